"""Erasure (GDPR art. 17): crypto-shredding every version of a record at its patient's request.

The ciphertexts, data keys and sealed salts go at once (reads answer 410); the KEK is then
rotated, so copies in free pages, WAL frames or dead tuples stay sealed under a destroyed
key; the erasure is marked on chain with the patient's signature and a Merkle proof that
the record is theirs. A legal retention hold (art. 17(3)) refuses, with its basis. The
answer lists the members the record was disclosed to (art. 19).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from careledger import errors
from careledger.chain import merkle
from careledger.chain.eip712 import Erasure
from careledger.services import keys
from careledger.services.enrollment import check_patient_signature
from careledger.services.gateway import Gateway
from careledger.services.jobs import JobStatus, wait_for_job
from careledger.services.requests import Principal
from careledger.store.db import Session
from careledger.store.models import ChainJobRow, PatientRow, RecordRow
from careledger.store.repositories import Batches, ChainJobs, Disclosures, Patients, Records, RetentionHolds


@dataclass(frozen=True)
class ErasureResult:
    erased: list[bytes]  # record ids of the versions shredded now
    disclosed_to: list[str]  # members that were shown any version
    chain: JobStatus | None  # the on-chain mark (None when the record was never anchored)
    keys_rotated: bool


def erase(
    gw: Gateway, principal: Principal, record_id: bytes, nonce: int, deadline: int, signature: bytes,
    *, wait_s: float = 15.0,
) -> ErasureResult:  # fmt: skip
    """Shred every version of the record `record_id` names, then mark it erased on chain."""
    message = Erasure(principal.keyid, record_id, nonce, deadline)
    with gw.db.session() as s:
        row = Records(s).by_record_id(record_id)
        if row is None:
            raise errors.NotFound("no such record at this custodian")
        patient = Patients(s).by_id(row.patient_id)
        assert patient is not None
        if principal.keyid != patient.address:
            raise errors.Forbidden("an erasure is requested by the record's own patient")
        versions = list(Records(s).versions(patient.id, row.resource_type, row.resource_id))
        live = [v for v in versions if v.status != "erased"]
        if not live:
            raise errors.Gone("this record was already erased")
        if versions[-1].record_id != record_id:
            # The on-chain mark covers the versions the signed one supersedes, not later ones.
            raise errors.Conflict(f"sign the erasure of the latest version, 0x{versions[-1].record_id.hex()}")
        for hold in RetentionHolds(s).for_patient(patient.id):
            if hold.resource_type in (None, row.resource_type):
                raise errors.RetentionHold(f"erasure refused under a legal retention hold: {hold.basis}")
        check_patient_signature(gw, patient.address, message.digest(gw.ledger.record_domain), signature)
        mark = _chain_mark(s, gw, row, patient, message, signature) if row.status == "anchored" else None
        disclosed_to = sorted({d.member for v in versions for d in Disclosures(s).of_record(v.record_id)})
        now = datetime.fromtimestamp(gw.clock(), UTC)
        for v in live:
            v.ciphertext = v.wrapped_key = v.sealed_meta = v.ciphertext_sha256 = None
            v.kek_id = None
            v.status, v.erased_at = "erased", now
        erased = [v.record_id for v in live]
        # Queued in the same transaction as the shredding: a crash cannot keep one without the other.
        job_id = (
            None
            if mark is None
            else ChainJobs(s)
            .add(ChainJobRow(kind="erase", payload=json.dumps(mark), status="pending", created_at=now))
            .id
        )
    keys.request_rotation(gw)
    job = wait_for_job(gw, job_id, wait_s) if job_id is not None else None
    return ErasureResult(erased, disclosed_to, job, _wait_rotation(gw, wait_s))


def _chain_mark(
    s: Session, gw: Gateway, row: RecordRow, patient: PatientRow, message: Erasure, signature: bytes
) -> dict[str, Any]:
    """The relay job that marks the record erased on chain, with its Merkle proof."""
    assert row.batch_id is not None and row.leaf_index is not None
    batch = Batches(s).by_id(row.batch_id)
    assert batch is not None and batch.chain_batch_id is not None
    members = Records(s).in_batch(batch.id)
    addresses = {m.patient_id: Patients(s).by_id(m.patient_id) for m in members}
    leaves = [
        merkle.AnchoredRecord.of(
            batch.chain_batch_id, gw.custodian, addresses[m.patient_id].address,  # type: ignore[union-attr]
            m.category, m.commitment, m.supersedes or bytes(32),
        ).leaf()
        for m in members
    ]  # fmt: skip
    record = {
        "batch_id": batch.chain_batch_id,
        "custodian": gw.custodian,
        "patient": patient.address,
        "category": row.category,
        "commitment": row.commitment.hex(),
        "supersedes": (row.supersedes or bytes(32)).hex(),
    }
    proof = [p.hex() for p in merkle.proof(leaves, row.leaf_index)]
    return {"message": message.to_json(), "record": record, "proof": proof, "signature": signature.hex()}


def _wait_rotation(gw: Gateway, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while keys.rotation_requested(gw):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
