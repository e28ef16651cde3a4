"""grantBatchBySig through the client, and the head-keyed caches of Ledger.head(): a cached
consent never outlives its revocation's block, a cached signer never outlives a
MemberRegistry change, and a consent's window is checked against the head's timestamp."""

import os
import time

import pytest
from coincurve import PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from careledger.chain.clients import Disclosure, RecordEntry, consent_index
from careledger.chain.eip712 import Enrollment, Grant, Revocation
from careledger.codes import Category, MemberStatus, Purpose, mask
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
FAR = 2**40 - 1


def _grant(cluster: Cluster, patient: LocalAccount, nonce: int = 1, **overrides: int) -> Grant:
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


def test_grant_batch_grants_the_valid_items_and_skips_the_others(cluster: Cluster) -> None:
    ledger = cluster.ledger
    people = [Account.create() for _ in range(4)]
    grants = [_grant(cluster, p) for p in people]
    signed = [(g, g.sign(p.key, ledger.consent_domain)) for g, p in zip(grants, people, strict=True)]
    signed[2] = (grants[2], grants[2].sign(people[3].key, ledger.consent_domain))  # someone else's signature
    events = ledger.consents.grant_batch_by_sig(cluster.clinic_relayer, signed)
    assert [e.patient for e in events] == [people[0].address, people[1].address, people[3].address]
    for event, grant in zip(events, [grants[0], grants[1], grants[3]], strict=True):
        assert event.matches(grant)
        assert event.consent_id == ledger.consents.consent_id_of(grant.patient, grant.grantee, 0)
        assert event.index == 0
    assert ledger.consents.consent_count(people[2].address, cluster.insurer.address) == 0
    assert not ledger.consents.nonce_used(people[2].address, 1)
    assert ledger.consents.max_grant_batch() == 100


def test_cached_consent_is_dropped_at_its_revocation_block(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    grant = _grant(cluster, patient)
    receipt = ledger.consents.grant_by_sig(
        cluster.clinic_relayer, grant, grant.sign(patient.key, ledger.consent_domain)
    )
    args = (patient.address, cluster.insurer.address, int(Category.CLAIMS), int(Purpose.HPAYMT))
    head = ledger.head()
    assert ledger.consents.permitted(*args, head) == receipt.consent_id
    key = (patient.address.lower(), cluster.insurer.address.lower(), *args[2:])
    assert ledger.watcher.consents[key].consent_id == receipt.consent_id  # cached
    assert ledger.consents.permitted(*args, ledger.head()) == receipt.consent_id
    revocation = Revocation(patient.address, receipt.consent_id, 2, FAR)
    revoked = ledger.consents.revoke_by_sig(
        cluster.clinic_relayer,
        revocation,
        cluster.insurer.address,
        0,
        revocation.sign(patient.key, ledger.consent_domain),
    )
    after = ledger.head()
    assert after.number >= revoked.block_number
    assert ledger.consents.permitted(*args, after) is None
    # checked at a block before the revocation, the consent still covered the read
    assert ledger.consents.is_permitted(*args, block=revoked.block_number - 1) == receipt.consent_id


def test_cached_consent_is_not_seen_from_a_head_older_than_its_grant(
    cluster: Cluster, patient: LocalAccount
) -> None:
    """A reader may hold a head from before a grant while another caches the consent at a
    newer head: the older head must not answer with it (the soak caught one such read,
    logged as checked before its consent was granted)."""
    ledger = cluster.ledger
    before = ledger.head()
    grant = _grant(cluster, patient)
    consent_id = ledger.consents.grant_by_sig(
        cluster.clinic_relayer, grant, grant.sign(patient.key, ledger.consent_domain)
    ).consent_id
    args = (patient.address, cluster.insurer.address, int(Category.CLAIMS), int(Purpose.HPAYMT))
    assert ledger.consents.permitted(*args, ledger.head()) == consent_id  # cached now
    stale = before._replace(generation=ledger.head().generation)  # same cache generation, older block
    assert ledger.consents.permitted(*args, stale) is None


def test_cached_consent_is_used_only_inside_its_window(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    now = int(time.time())
    grant = _grant(cluster, patient, valid_from=now - 60, valid_until=now + 3)
    consent_id = ledger.consents.grant_by_sig(
        cluster.clinic_relayer, grant, grant.sign(patient.key, ledger.consent_domain)
    ).consent_id
    args = (patient.address, cluster.insurer.address, int(Category.CLAIMS), int(Purpose.HPAYMT))
    head = ledger.head()
    assert ledger.consents.permitted(*args, head) == consent_id
    # the chain's clock passes the window's end: the cached consent must not answer any more
    cluster.devnet.ledger.w3.provider.make_request("evm_increaseTime", [10])  # type: ignore[arg-type]
    cluster.devnet.ledger.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert ledger.head().timestamp >= grant.valid_until
    assert ledger.consents.permitted(*args, ledger.head()) is None


def test_consent_index_finds_the_index_of_an_id(cluster: Cluster, patient: LocalAccount) -> None:
    grantee = cluster.insurer.address
    for index in (0, 5, 63):
        consent_id = cluster.ledger.consents.consent_id_of(patient.address, grantee, index)
        assert consent_index(patient.address, grantee, consent_id) == index
    assert consent_index(patient.address, grantee, b"\x01" * 32) is None


def test_cached_signer_and_status_follow_member_registry_events(cluster: Cluster) -> None:
    ledger = cluster.ledger
    signer = Account.create()
    members = ledger.members
    assert members.active_signer(signer.address)[0] is None  # now cached: not a signer
    assert members.status_of(cluster.insurer.address) is MemberStatus.ACTIVE
    members.add_signer(cluster.insurer, signer.address)
    member, _ = members.active_signer(signer.address)
    assert member == cluster.insurer.address
    members.remove_signer(cluster.insurer, signer.address)
    assert members.active_signer(signer.address)[0] is None


def test_audit_replay_reproduces_batched_grants() -> None:
    """grantBatchBySig emits grantBySig's events: the replay rebuilds the same consents, and a
    disclosure under one of them is covered."""
    from careledger.audit.replay import replay
    from careledger.chain.devnet import dev_key, start_devnet
    from careledger.codes import Role

    devnet = start_devnet()
    try:
        ledger = devnet.ledger
        seats = devnet.council()
        clinic, relayer, insurer = (ledger.sender(dev_key(i)) for i in (10, 15, 12))
        for member, role in ((clinic, Role.CLINIC), (insurer, Role.INSURER)):
            proposal = ledger.members.propose_admit(
                seats[0], member.address, role, role.name, "http://127.0.0.1:9"
            )
            ledger.members.vote(seats[1], proposal)
        ledger.members.set_relayer(clinic, relayer.address)
        now = int(time.time())
        people = [Account.create() for _ in range(3)]
        grants = [
            Grant(p.address, insurer.address, mask([Category.CLAIMS]), mask([Purpose.HPAYMT]), now - 60,
                  now + 86400, 1, now + 600)
            for p in people
        ]  # fmt: skip
        events = ledger.consents.grant_batch_by_sig(
            relayer, [(g, g.sign(p.key, ledger.consent_domain)) for g, p in zip(grants, people, strict=True)]
        )
        assert len(events) == 3
        enrollment = Enrollment(people[0].address, clinic.address, keccak(b"ref"), 1, FAR)
        ledger.records.enroll_by_sig(
            relayer, enrollment, enrollment.sign(people[0].key, ledger.record_domain)
        )
        anchored = ledger.records.anchor(
            relayer, clinic.address, [RecordEntry(people[0].address, int(Category.CLAIMS), os.urandom(32))]
        )
        request_hash = keccak(os.urandom(32))
        rs = PrivateKey(bytes(insurer.account.key)).sign_recoverable(request_hash, hasher=None)
        ledger.access.log(
            relayer,
            [
                Disclosure(
                    anchored.records[0].record_id,
                    insurer.address,
                    int(Purpose.HPAYMT),
                    False,
                    ledger.block_number(),
                    events[0].consent_id,
                    request_hash,
                    rs[:64] + bytes([27 + rs[64]]),
                )
            ],
        )
        report = replay(devnet.anvil.url, devnet.deployment, ledger=ledger)
        assert report.findings == []
        assert {"0x" + e.consent_id.hex() for e in events} <= set(report.consents)
        assert len(report.disclosures) == 1
    finally:
        devnet.anvil.stop()


def _mine(cluster: Cluster) -> int:
    cluster.ledger.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return int(cluster.ledger.w3.eth.block_number)


def test_a_head_younger_than_the_allowed_age_is_handed_out_again(cluster: Cluster) -> None:
    watcher = cluster.ledger.watcher
    first = watcher.head()
    mined = _mine(cluster)
    assert watcher.head(max_age_s=60).number == first.number  # young enough: no RPC
    assert watcher.head().number == mined  # no age allowed: read after the call began


def test_reached_block_is_never_older_than_the_head_handed_out(cluster: Cluster) -> None:
    """Read your writes: a block this process saw mined beats any allowed age."""
    watcher = cluster.ledger.watcher
    watcher.head()
    mined = _mine(cluster)
    watcher.reached(mined)
    assert watcher.head(max_age_s=60).number == mined
    watcher.reached(mined - 1)  # older than the head: nothing to do
    assert watcher.head(max_age_s=60).number == mined


def test_a_head_past_half_its_age_is_refreshed_in_the_background(cluster: Cluster) -> None:
    watcher = cluster.ledger.watcher
    first = watcher.head()
    mined = _mine(cluster)
    time.sleep(0.35)
    assert watcher.head(max_age_s=0.6).number == first.number  # still allowed: answered at once
    # Asking with an age it is far from never reads the head itself: a newer head can only
    # come from the refresh the call above started.
    for _ in range(100):
        if watcher.head(max_age_s=3600).number == mined:
            break
        time.sleep(0.05)
    assert watcher.head(max_age_s=3600).number == mined
