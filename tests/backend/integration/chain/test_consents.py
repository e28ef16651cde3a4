import time

import pytest
from eth_account.signers.local import LocalAccount

from careledger import errors
from careledger.chain.eip712 import Grant, Revocation
from careledger.codes import Category, Purpose, mask
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
FAR = 2**40 - 1


def _grant(cluster: Cluster, patient: LocalAccount, nonce: int, **overrides: int) -> Grant:
    now = int(time.time())
    fields = {
        "categories": mask([Category.CLAIMS]),
        "purposes": mask([Purpose.HPAYMT]),
        "valid_from": now - 60,
        "valid_until": now + 86400,
        "nonce": nonce,
        "deadline": now + 600,
        **overrides,
    }
    return Grant(patient.address, cluster.insurer.address, **fields)


def test_digests_equal_the_contracts(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    grant = _grant(cluster, patient, 1)
    assert ledger.consents.grant_digest(grant) == grant.digest(ledger.consent_domain)
    revocation = Revocation(patient.address, b"\x42" * 32, 2, FAR)
    assert ledger.consents.revocation_digest(revocation) == revocation.digest(ledger.consent_domain)


def test_grant_permits_only_its_scope(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    grant = _grant(cluster, patient, 1)
    receipt = ledger.consents.grant_by_sig(
        cluster.clinic_relayer, grant, grant.sign(patient.key, ledger.consent_domain)
    )
    assert receipt.consent_id == ledger.consents.consent_id_of(patient.address, cluster.insurer.address, 0)
    consents = ledger.consents
    assert consents.is_permitted(
        patient.address, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT
    ) == (receipt.consent_id)
    assert (
        consents.is_permitted(patient.address, cluster.insurer.address, Category.OBSERVATIONS, Purpose.HPAYMT)
        is None
    )
    assert (
        consents.is_permitted(patient.address, cluster.insurer.address, Category.CLAIMS, Purpose.TREAT)
        is None
    )
    assert (
        consents.is_permitted(patient.address, cluster.researcher.address, Category.CLAIMS, Purpose.HPAYMT)
        is None
    )


def test_revocation_ends_the_consent(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    grant = _grant(cluster, patient, 1)
    granted = ledger.consents.grant_by_sig(
        cluster.clinic, grant, grant.sign(patient.key, ledger.consent_domain)
    )
    revocation = Revocation(patient.address, granted.consent_id, 2, FAR)
    # Any active member relays a revocation, not only the one that relayed the grant.
    ledger.consents.revoke_by_sig(
        cluster.insurer,
        revocation,
        cluster.insurer.address,
        0,
        revocation.sign(patient.key, ledger.consent_domain),
    )
    assert ledger.consents.get_consent(patient.address, cluster.insurer.address, 0).revoked
    assert (
        ledger.consents.is_permitted(
            patient.address, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT
        )
        is None
    )
    with pytest.raises(errors.AlreadyRevoked):
        again = Revocation(patient.address, granted.consent_id, 3, FAR)
        ledger.consents.revoke_by_sig(
            cluster.insurer, again, cluster.insurer.address, 0, again.sign(patient.key, ledger.consent_domain)
        )


def test_consents_accumulate(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    first = _grant(cluster, patient, 1)
    second = _grant(cluster, patient, 2, categories=mask([Category.OBSERVATIONS]))
    a = ledger.consents.grant_by_sig(cluster.clinic, first, first.sign(patient.key, ledger.consent_domain))
    b = ledger.consents.grant_by_sig(cluster.clinic, second, second.sign(patient.key, ledger.consent_domain))
    assert (a.index, b.index) == (0, 1) and a.consent_id != b.consent_id
    assert ledger.consents.consent_count(patient.address, cluster.insurer.address) == 2
    permitted = ledger.consents.is_permitted(
        patient.address, cluster.insurer.address, Category.OBSERVATIONS, Purpose.HPAYMT
    )
    assert permitted == b.consent_id


def test_replayed_grant_is_refused(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    grant = _grant(cluster, patient, 5)
    signature = grant.sign(patient.key, ledger.consent_domain)
    ledger.consents.grant_by_sig(cluster.clinic, grant, signature)
    with pytest.raises(errors.NonceUsed, match="UnorderedNoncesUsed"):
        ledger.consents.grant_by_sig(cluster.clinic, grant, signature)


def test_expired_grant_is_refused(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    grant = _grant(cluster, patient, 1, deadline=int(time.time()) - 3600)
    with pytest.raises(errors.ExpiredSignature):
        ledger.consents.grant_by_sig(cluster.clinic, grant, grant.sign(patient.key, ledger.consent_domain))


def test_grant_signed_by_someone_else_is_refused(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    grant = _grant(cluster, patient, 1)
    with pytest.raises(errors.InvalidSignature):
        ledger.consents.grant_by_sig(
            cluster.clinic, grant, grant.sign(cluster.insurer_signer.key, ledger.consent_domain)
        )


def test_break_glass_is_not_grantable(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    grant = _grant(cluster, patient, 1, purposes=mask([Purpose.BTG]))
    with pytest.raises(errors.InvalidInput, match="ConsentRegistryInvalidScope"):
        ledger.consents.grant_by_sig(cluster.clinic, grant, grant.sign(patient.key, ledger.consent_domain))


def test_non_member_cannot_relay(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    outsider = ledger.sender(bytes.fromhex("22" * 32))
    ledger.w3.provider.make_request("anvil_setBalance", [outsider.address, hex(10**18)])  # type: ignore[arg-type]
    grant = _grant(cluster, patient, 1)
    with pytest.raises(errors.NotActiveMember):
        ledger.consents.grant_by_sig(outsider, grant, grant.sign(patient.key, ledger.consent_domain))


def test_codes_match_the_contract(cluster: Cluster, patient: LocalAccount) -> None:
    """Every Python category and grantable purpose is accepted; one past the end is refused."""
    ledger = cluster.ledger
    grantable = mask([p for p in Purpose if p is not Purpose.BTG])
    grant = _grant(cluster, patient, 1, categories=mask(Category), purposes=grantable)
    ledger.consents.grant_by_sig(cluster.clinic, grant, grant.sign(patient.key, ledger.consent_domain))
    too_far = _grant(cluster, patient, 2, categories=1 << len(Category))
    with pytest.raises(errors.InvalidInput, match="InvalidScope"):
        ledger.consents.grant_by_sig(
            cluster.clinic, too_far, too_far.sign(patient.key, ledger.consent_domain)
        )
    with pytest.raises(errors.InvalidInput, match="InvalidCode"):
        ledger.consents.is_permitted(patient.address, cluster.insurer.address, len(Category), 0)
