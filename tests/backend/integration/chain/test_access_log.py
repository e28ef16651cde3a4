import os

import pytest
from eth_account import Account

from careledger import errors
from careledger.chain.clients import Disclosure, expand_signature
from careledger.codes import Purpose
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration


def _entry(cluster: Cluster, checked_block: int, **overrides: object) -> Disclosure:
    signer = cluster.insurer_signer
    request_hash = os.urandom(32)
    fields: dict[str, object] = {
        "record_id": os.urandom(32),
        "requester": signer.address,
        "purpose": int(Purpose.HPAYMT),
        "break_glass": False,
        "checked_block": checked_block,
        "basis": os.urandom(32),
        "request_hash": request_hash,
        "signature": bytes(Account.unsafe_sign_hash(request_hash, signer.key).signature),
    }
    fields.update(overrides)
    return Disclosure(**fields)  # type: ignore[arg-type]


def test_logged_entry_lets_anyone_recover_the_requester(cluster: Cluster) -> None:
    ledger = cluster.ledger
    entry = _entry(cluster, ledger.block_number())
    receipt = ledger.access.log(cluster.clinic_relayer, [entry])
    assert receipt.count == 1
    (event,) = ledger.access.contract.events.AccessLogged().get_logs(
        from_block=receipt.tx.block_number, to_block=receipt.tx.block_number
    )
    args = event["args"]
    assert bytes(args["recordId"]) == entry.record_id
    assert args["requester"] == entry.requester
    assert (args["purpose"], args["breakGlass"], args["checkedBlock"]) == (
        entry.purpose,
        False,
        entry.checked_block,
    )
    signature = expand_signature(bytes(args["sigR"]), bytes(args["sigVS"]))
    assert Account._recover_hash(bytes(args["requestHash"]), signature=signature) == entry.requester


def test_a_late_entry_is_recorded_and_a_future_one_refused(cluster: Cluster) -> None:
    ledger = cluster.ledger
    lag = ledger.access.max_check_lag()
    head = ledger.block_number()
    if head <= lag + 1:
        ledger.w3.provider.make_request("anvil_mine", [hex(lag + 2)])  # type: ignore[arg-type]
        head = ledger.block_number()
    before = ledger.access.entry_count()
    ledger.access.log(cluster.clinic_relayer, [_entry(cluster, head - lag - 1)])  # audits flag it late
    assert ledger.access.entry_count() == before + 1
    with pytest.raises(errors.StaleConsentCheck):
        ledger.access.log(cluster.clinic_relayer, [_entry(cluster, ledger.block_number() + 5)])


def test_break_glass_needs_emergency_purpose(cluster: Cluster) -> None:
    ledger = cluster.ledger
    head = ledger.block_number()
    ledger.access.log(
        cluster.clinic_relayer, [_entry(cluster, head, break_glass=True, purpose=int(Purpose.BTG))]
    )
    with pytest.raises(errors.InvalidInput, match="AccessLogInvalidEntry"):
        ledger.access.log(
            cluster.clinic_relayer, [_entry(cluster, head, break_glass=True, purpose=int(Purpose.TREAT))]
        )


def test_consent_entry_needs_consent_id(cluster: Cluster) -> None:
    with pytest.raises(errors.InvalidInput, match="AccessLogInvalidEntry"):
        cluster.ledger.access.log(
            cluster.clinic_relayer, [_entry(cluster, cluster.ledger.block_number(), basis=b"\0" * 32)]
        )


def test_only_clinics_log(cluster: Cluster) -> None:
    with pytest.raises(errors.NotActiveMember):
        cluster.ledger.access.log(cluster.insurer, [_entry(cluster, cluster.ledger.block_number())])
