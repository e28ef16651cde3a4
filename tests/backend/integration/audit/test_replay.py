"""The auditor's replay on a fresh anvil: a clean history has no findings; broken rules are named."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from careledger.audit.replay import events_per_second, replay
from careledger.chain.clients import AnchorReceipt, Disclosure, RecordEntry
from careledger.chain.devnet import Devnet, dev_key, start_devnet
from careledger.chain.eip712 import Enrollment, Erasure, Grant, Revocation
from careledger.chain.sender import Sender
from careledger.codes import Category, Purpose, Role, mask

pytestmark = pytest.mark.integration
FAR = 2**40 - 1


@dataclass
class Net:
    devnet: Devnet
    clinic: Sender
    relayer: Sender
    insurer: Sender
    insurer_signer: LocalAccount
    patient: LocalAccount
    claim: bytes  # record id of an anchored claim
    consent_id: bytes
    anchored: AnchorReceipt


def _admit(devnet: Devnet, who: Sender, role: Role, endpoint: str = "") -> None:
    seats = devnet.council()
    proposal = devnet.ledger.members.propose_admit(seats[0], who.address, role, role.name.lower(), endpoint)
    assert devnet.ledger.members.vote(seats[1], proposal)


@pytest.fixture
def net() -> Iterator[Net]:
    devnet = start_devnet()
    try:
        ledger = devnet.ledger
        clinic, relayer, insurer = (
            ledger.sender(dev_key(10)),
            ledger.sender(dev_key(15)),
            ledger.sender(dev_key(12)),
        )
        _admit(devnet, clinic, Role.CLINIC, "http://127.0.0.1:9")
        _admit(devnet, insurer, Role.INSURER)
        ledger.members.set_relayer(clinic, relayer.address)
        signer = Account.create()
        ledger.members.add_signer(insurer, signer.address)
        patient = Account.create()
        enrollment = Enrollment(patient.address, clinic.address, keccak(b"salt" + b"Patient/p"), 1, FAR)
        ledger.records.enroll_by_sig(relayer, enrollment, enrollment.sign(patient.key, ledger.record_domain))
        anchored = ledger.records.anchor(
            relayer,
            clinic.address,
            [
                RecordEntry(patient.address, int(Category.CLAIMS), os.urandom(32)),
                RecordEntry(patient.address, int(Category.OBSERVATIONS), os.urandom(32)),
            ],
        )
        now = int(time.time())
        grant = Grant(
            patient.address,
            insurer.address,
            mask([Category.CLAIMS]),
            mask([Purpose.HPAYMT]),
            now - 3600,
            now + 86400,
            2,
            FAR,
        )
        granted = ledger.consents.grant_by_sig(relayer, grant, grant.sign(patient.key, ledger.consent_domain))
        yield Net(
            devnet,
            clinic,
            relayer,
            insurer,
            signer,
            patient,
            anchored.records[0].record_id,
            granted.consent_id,
            anchored,
        )
    finally:
        devnet.anvil.stop()


def _disclose(
    net: Net,
    *,
    basis: bytes,
    signer: LocalAccount | None = None,
    requester: str | None = None,
    checked: int | None = None,
) -> None:
    ledger = net.devnet.ledger
    request_hash = keccak(os.urandom(32))
    signature = bytes(Account.unsafe_sign_hash(request_hash, (signer or net.insurer_signer).key).signature)
    entry = Disclosure(
        net.claim,
        requester or net.insurer_signer.address,
        int(Purpose.HPAYMT),
        False,
        ledger.block_number() if checked is None else checked,
        basis,
        request_hash,
        signature,
    )
    ledger.access.log(net.relayer, [entry])


def _codes(net: Net) -> list[str]:
    d = net.devnet
    report = replay(d.anvil.url, d.deployment, ledger=d.ledger)
    return sorted(f.code for f in report.findings)


def test_clean_history_has_no_findings(net: Net) -> None:
    _disclose(net, basis=net.consent_id)
    d = net.devnet
    report = replay(d.anvil.url, d.deployment, ledger=d.ledger)
    assert report.findings == []
    assert len(report.disclosures) == 1 and len(report.records) == 2 and len(report.consents) == 1
    assert report.disclosures[0].member == net.insurer.address.lower()
    assert events_per_second(report) > 0 and "cross_check_s" in report.timings


def test_disclosure_without_consent_is_found(net: Net) -> None:
    _disclose(net, basis=os.urandom(32))
    assert _codes(net) == ["disclosure-without-consent"]


def test_disclosure_whose_signature_is_someone_elses_is_found(net: Net) -> None:
    _disclose(net, basis=net.consent_id, signer=Account.create())
    assert _codes(net) == ["disclosure-signature-mismatch"]


def test_disclosure_after_revocation_is_found(net: Net) -> None:
    ledger = net.devnet.ledger
    revocation = Revocation(net.patient.address, net.consent_id, 3, FAR)
    ledger.consents.revoke_by_sig(
        net.relayer,
        revocation,
        net.insurer.address,
        0,
        revocation.sign(net.patient.key, ledger.consent_domain),
    )
    _disclose(net, basis=net.consent_id)
    assert _codes(net) == ["disclosure-after-revocation"]


def test_disclosure_logged_past_the_lag_is_recorded_and_flagged_late(net: Net) -> None:
    ledger, lag = net.devnet.ledger, net.devnet.deployment.max_check_lag
    checked = ledger.block_number()
    ledger.w3.provider.make_request("anvil_mine", [hex(lag + 5)])  # type: ignore[arg-type]
    _disclose(net, basis=net.consent_id, checked=checked)  # a gateway back after an outage
    report = replay(net.devnet.anvil.url, net.devnet.deployment, ledger=ledger)
    assert [(f.code, f.severity.value) for f in report.findings] == [("disclosure-logged-late", "medium")]
    assert len(report.disclosures) == 1  # the patient's accounting has it


def test_a_disclosure_logged_twice_is_found(net: Net) -> None:
    ledger = net.devnet.ledger
    request_hash = keccak(os.urandom(32))
    signature = bytes(Account.unsafe_sign_hash(request_hash, net.insurer_signer.key).signature)
    entry = Disclosure(
        net.claim,
        net.insurer_signer.address,
        int(Purpose.HPAYMT),
        False,
        ledger.block_number(),
        net.consent_id,
        request_hash,
        signature,
    )
    ledger.access.log(net.relayer, [entry])
    ledger.access.log(net.relayer, [entry])  # a relayer that re-sends what was mined
    assert _codes(net) == ["disclosure-logged-twice"]


def test_disclosure_to_a_non_member_is_found(net: Net) -> None:
    stranger = Account.create()
    _disclose(net, basis=net.consent_id, signer=stranger, requester=stranger.address)
    assert _codes(net) == ["disclosure-to-non-member", "disclosure-without-consent"]


def test_erasure_with_the_patients_signature_is_accepted(net: Net) -> None:
    ledger = net.devnet.ledger
    record = net.anchored.records[0]
    erasure = Erasure(net.patient.address, record.record_id, 9, FAR)
    ledger.records.erase_by_sig(
        net.relayer,
        erasure,
        record,
        net.anchored.proof(record.record_id),
        erasure.sign(net.patient.key, ledger.record_domain),
    )
    d = net.devnet
    report = replay(d.anvil.url, d.deployment, ledger=d.ledger)
    assert report.findings == []
    assert report.records["0x" + record.record_id.hex()].erased_block is not None
