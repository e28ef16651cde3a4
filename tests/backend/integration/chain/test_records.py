import os

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from careledger import errors
from careledger.chain import merkle
from careledger.chain.clients import RecordEntry
from careledger.chain.eip712 import Enrollment, Erasure
from careledger.codes import Category
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
FAR = 2**40 - 1


def _enroll(cluster: Cluster, patient: LocalAccount, nonce: int = 0) -> bytes:
    ledger = cluster.ledger
    commitment = keccak(os.urandom(32) + b"MRN-0001")
    enrollment = Enrollment(patient.address, cluster.clinic.address, commitment, nonce, FAR)
    ledger.records.enroll_by_sig(
        cluster.clinic_relayer, enrollment, enrollment.sign(patient.key, ledger.record_domain)
    )
    return commitment


def test_enrollment_is_recorded_and_digest_matches(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    enrollment = Enrollment(patient.address, cluster.clinic.address, b"\x01" * 32, 9, FAR)
    assert ledger.records.enrollment_digest(enrollment) == enrollment.digest(ledger.record_domain)
    commitment = _enroll(cluster, patient)
    assert ledger.records.enrollment_of(patient.address, cluster.clinic.address) == commitment
    assert ledger.records.enrollment_of(patient.address, cluster.clinic_b.address) is None


def test_enrollment_for_another_custodian_is_refused(cluster: Cluster, patient: LocalAccount) -> None:
    ledger = cluster.ledger
    enrollment = Enrollment(patient.address, cluster.clinic_b.address, b"\x01" * 32, 0, FAR)
    with pytest.raises(errors.InvalidInput, match="RecordRegistryWrongCustodian"):
        ledger.records.enroll_by_sig(
            cluster.clinic, enrollment, enrollment.sign(patient.key, ledger.record_domain)
        )


def test_anchor_matches_python_ids_leaves_and_root(cluster: Cluster) -> None:
    ledger = cluster.ledger
    patients = [Account.create() for _ in range(3)]
    for p in patients:
        _enroll(cluster, p)
    entries = [
        RecordEntry(p.address, int(Category.OBSERVATIONS), os.urandom(32)) for p in patients for _ in range(3)
    ]
    receipt = ledger.records.anchor(cluster.clinic_relayer, cluster.clinic.address, entries)
    assert len(receipt.records) == 9
    assert receipt.root == merkle.root([r.leaf() for r in receipt.records])
    assert ledger.records.batch_root(receipt.batch_id) == receipt.root
    for record in receipt.records:
        assert ledger.records.leaf_hash(record) == record.leaf()
        assert record.record_id == merkle.record_id_of(
            cluster.clinic.address, record.patient, record.commitment
        )
    events = ledger.records.contract.events.RecordAnchored().get_logs(
        from_block=receipt.tx.block_number, to_block=receipt.tx.block_number
    )
    assert [bytes(e["args"]["recordId"]) for e in events] == [r.record_id for r in receipt.records]


def test_anchor_for_unenrolled_patient_is_refused(cluster: Cluster, patient: LocalAccount) -> None:
    entry = RecordEntry(patient.address, int(Category.CONDITIONS), os.urandom(32))
    with pytest.raises(errors.NotEnrolled):
        cluster.ledger.records.anchor(cluster.clinic_relayer, cluster.clinic.address, [entry])


def test_only_clinics_anchor(cluster: Cluster, patient: LocalAccount) -> None:
    _enroll(cluster, patient)
    entry = RecordEntry(patient.address, int(Category.CLAIMS), os.urandom(32))
    with pytest.raises(errors.NotActiveMember):
        cluster.ledger.records.anchor(cluster.insurer, cluster.insurer.address, [entry])


@pytest.mark.parametrize("position", [0, 3, 4])
def test_erasure_needs_patient_signature_and_proof(
    cluster: Cluster, patient: LocalAccount, position: int
) -> None:
    ledger = cluster.ledger
    _enroll(cluster, patient)
    entries = [RecordEntry(patient.address, int(Category.MEDICATIONS), os.urandom(32)) for _ in range(5)]
    receipt = ledger.records.anchor(cluster.clinic_relayer, cluster.clinic.address, entries)
    record = receipt.records[position]
    proof = receipt.proof(record.record_id)
    erasure = Erasure(patient.address, record.record_id, 1, FAR)

    stranger = Account.create()
    with pytest.raises(errors.InvalidSignature):
        ledger.records.erase_by_sig(
            cluster.clinic, erasure, record, proof, erasure.sign(stranger.key, ledger.record_domain)
        )
    forged = Erasure(stranger.address, record.record_id, 1, FAR)
    with pytest.raises(errors.InvalidInput, match="RecordRegistryInvalidProof"):
        ledger.records.erase_by_sig(
            cluster.clinic, forged, record, proof, forged.sign(stranger.key, ledger.record_domain)
        )

    ledger.records.erase_by_sig(
        cluster.clinic, erasure, record, proof, erasure.sign(patient.key, ledger.record_domain)
    )
    assert ledger.records.is_erased(record.record_id)
    again = Erasure(patient.address, record.record_id, 2, FAR)
    with pytest.raises(errors.AlreadyErased):
        ledger.records.erase_by_sig(
            cluster.clinic, again, record, proof, again.sign(patient.key, ledger.record_domain)
        )
