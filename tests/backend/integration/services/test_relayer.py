"""The relayer against a real anvil and both databases: exactly-once anchoring and relaying."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from careledger.chain.eip712 import Enrollment, Grant
from careledger.config import Settings
from careledger.services.relayer import Relayer
from careledger.store.db import Database
from careledger.store.models import ChainJobRow, PatientRow, RecordRow
from careledger.store.repositories import Batches, ChainJobs, ChainTxs, Patients, Records
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
FAR = 2**40 - 1


class Crash(BaseException):
    """Stands for the process dying (SIGKILL) between two statements."""


def _relayer(cluster: Cluster, db: Database, **settings: object) -> Relayer:
    config = Settings(anchor_batch_max_age_s=0, log_batch_max_age_s=0, **settings)  # type: ignore[arg-type]
    sender = cluster.ledger.sender(cluster.clinic_relayer.account.key)
    return Relayer(db, cluster.ledger, sender, cluster.clinic.address, config)


def _enroll(cluster: Cluster, db: Database, relayer: Relayer) -> tuple[int, str]:
    patient = Account.create()
    salt = os.urandom(32)
    commitment = keccak(salt + b"Patient/example")
    message = Enrollment(
        patient.address, cluster.clinic.address, commitment, int.from_bytes(os.urandom(8)), FAR
    )
    now = datetime.now(UTC)
    with db.session() as s:
        row = Patients(s).add(
            PatientRow(
                address=patient.address,
                local_reference="Patient/example",
                reference_salt=salt,
                reference_commitment=commitment,
                status="pending",
                created_at=now,
            )
        )
        payload = {
            "message": message.to_json(),
            "signature": message.sign(patient.key, cluster.ledger.record_domain).hex(),
        }
        ChainJobs(s).add(
            ChainJobRow(kind="enroll", payload=json.dumps(payload), status="pending", created_at=now)
        )
        patient_id = row.id
    relayer.drain()
    with db.session() as s:
        enrolled = Patients(s).by_id(patient_id)
        assert enrolled is not None and enrolled.status == "enrolled"
    return patient_id, patient.address


def _pending_records(db: Database, patient_id: int, n: int) -> list[bytes]:
    commitments = []
    with db.session() as s:
        for i in range(n):
            commitment = os.urandom(32)
            commitments.append(commitment)
            Records(s).add(
                RecordRow(
                    record_id=os.urandom(32),  # the service derives it; the relayer does not use it
                    patient_id=patient_id,
                    resource_type="Observation",
                    resource_id=f"obs-{i}-{commitment.hex()[:6]}",
                    version=1,
                    category=3,
                    commitment=commitment,
                    status="pending",
                    created_at=datetime.now(UTC),
                )
            )
    return commitments


def test_pending_records_are_anchored_once_with_the_local_root(cluster: Cluster, database_url: str) -> None:
    db = Database(database_url)
    relayer = _relayer(cluster, db)
    patient_id, _ = _enroll(cluster, db, relayer)
    _pending_records(db, patient_id, 7)
    before = cluster.ledger.records.batch_count()
    relayer.drain()
    assert cluster.ledger.records.batch_count() == before + 1
    with db.session() as s:
        rows = Records(s).of_patient(patient_id)
        assert {r.status for r in rows} == {"anchored"}
        batch_id = rows[0].batch_id
        assert batch_id is not None
        batch = Batches(s).by_id(batch_id)
        assert batch is not None and batch.status == "anchored" and batch.chain_batch_id is not None
        assert cluster.ledger.records.batch_root(batch.chain_batch_id) == batch.root
    db.dispose()


def test_crash_between_storing_and_broadcasting_anchors_exactly_once(
    cluster: Cluster, database_url: str
) -> None:
    db = Database(database_url)
    first = _relayer(cluster, db, lease_ttl_s=0.2)
    patient_id, _ = _enroll(cluster, db, first)
    _pending_records(db, patient_id, 5)

    def crash(*_: object) -> None:
        raise Crash

    first.sender.broadcast = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        first.step()
    before = cluster.ledger.records.batch_count()
    time.sleep(0.25)  # the dead process's lease runs out

    second = _relayer(cluster, db, lease_ttl_s=0.2)
    second.drain()
    assert cluster.ledger.records.batch_count() == before + 1
    with db.session() as s:
        assert {r.status for r in Records(s).of_patient(patient_id)} == {"anchored"}
        assert not ChainTxs(s).unsettled(second.sender.address)
    db.dispose()


def test_failed_relay_job_reports_the_contract_error(cluster: Cluster, database_url: str) -> None:
    db = Database(database_url)
    relayer = _relayer(cluster, db)
    patient = Account.create()
    grant = Grant(patient.address, cluster.insurer.address, 1024, 4, 0, FAR - 1, 1, int(time.time()) - 3600)
    payload = {
        "message": grant.to_json(),
        "signature": grant.sign(patient.key, cluster.ledger.consent_domain).hex(),
    }
    with db.session() as s:
        job_id = (
            ChainJobs(s)
            .add(
                ChainJobRow(
                    kind="grant", payload=json.dumps(payload), status="pending", created_at=datetime.now(UTC)
                )
            )
            .id
        )
    relayer.drain()
    with db.session() as s:
        job = ChainJobs(s).by_id(job_id)
        assert job is not None and job.status == "failed", (job.status, job.error, job.result)
        assert "ConsentRegistryExpiredSignature" in (job.error or "")
    db.dispose()


def test_only_the_lease_holder_sends(cluster: Cluster, database_url: str) -> None:
    db = Database(database_url)
    a, b = _relayer(cluster, db), _relayer(cluster, db)
    a.step()
    assert a.stats.holds_lease
    b.step()
    assert not b.stats.holds_lease
    a.release()
    b.step()
    assert b.stats.holds_lease
    b.release()
    db.dispose()


def _grant_job(db: Database, grant: Grant, key: bytes, domain: object) -> int:
    payload = {"message": grant.to_json(), "signature": grant.sign(key, domain).hex()}  # type: ignore[arg-type]
    with db.session() as s:
        row = ChainJobs(s).add(
            ChainJobRow(
                kind="grant", payload=json.dumps(payload), status="pending", created_at=datetime.now(UTC)
            )
        )
        return row.id


def test_grants_go_in_one_batch_and_a_skipped_one_fails_with_its_reason(
    cluster: Cluster, database_url: str
) -> None:
    db = Database(database_url)
    relayer = _relayer(cluster, db)
    now = int(time.time())
    people = [Account.create() for _ in range(5)]
    jobs = []
    for n, p in enumerate(people):
        deadline = now - 3600 if n == 2 else now + 600  # the third one's signature expired
        grant = Grant(p.address, cluster.insurer.address, 1024, 4, now - 60, now + 86400, 1, deadline)
        jobs.append(_grant_job(db, grant, p.key, cluster.ledger.consent_domain))
    relayer.drain()
    with db.session() as s:
        rows = [ChainJobs(s).by_id(j) for j in jobs]
        assert all(r is not None for r in rows)
        done = [r for r in rows if r is not None and r.status == "done"]
        failed = [r for r in rows if r is not None and r.status == "failed"]
        assert [r.id for r in failed] == [jobs[2]]
        assert "ConsentRegistryExpiredSignature" in (failed[0].error or ""), failed[0].error
        assert len(done) == 4 and len({r.tx_id for r in done}) == 1  # one transaction for all four
        for r, p in zip(done, [people[0], people[1], people[3], people[4]], strict=True):
            result = json.loads(r.result or "{}")
            assert result["index"] == 0
            expected = cluster.ledger.consents.consent_id_of(p.address, cluster.insurer.address, 0)
            assert result["consentId"] == "0x" + expected.hex()
    db.dispose()


def test_several_transactions_share_a_block_when_the_chain_mines_slowly(
    cluster: Cluster, database_url: str
) -> None:
    db = Database(database_url)
    relayer = _relayer(cluster, db, anchor_batch_max=5)
    patient_id, _ = _enroll(cluster, db, relayer)
    _pending_records(db, patient_id, 15)
    w3 = cluster.ledger.w3
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        for _ in range(3):
            assert relayer.step()  # each signs and sends the next batch without waiting
        with db.session() as s:
            assert len(ChainTxs(s).unsettled(relayer.sender.address)) == 3
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    relayer.drain()
    with db.session() as s:
        rows = Records(s).of_patient(patient_id)
        assert {r.status for r in rows} == {"anchored"} and len(rows) == 15
        blocks = {Batches(s).by_id(r.batch_id).block_number for r in rows if r.batch_id}  # type: ignore[union-attr]
        assert len(blocks) == 1 and len({r.batch_id for r in rows}) == 3
    db.dispose()
