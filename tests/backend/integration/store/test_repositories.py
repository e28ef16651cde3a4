from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from careledger.errors import NonceReused, StoreConflict
from careledger.store.db import Database
from careledger.store.migrate import downgrade, upgrade
from careledger.store.models import Base, PatientRow, RecordRow
from careledger.store.repositories import (
    _PENDING_ENTRIES,
    _RECORDS_WAITING,
    Leases,
    Nonces,
    Patients,
    Records,
)

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _patient(db: Database, address: str = "0x" + "11" * 20) -> int:
    with db.session() as s:
        row = Patients(s).add(
            PatientRow(
                address=address,
                local_reference="MRN-1",
                reference_salt=b"\x01" * 32,
                reference_commitment=b"\x02" * 32,
                status="enrolled",
                created_at=NOW,
            )
        )
        return row.id


def _record(patient_id: int, version: int, record_id: bytes) -> RecordRow:
    return RecordRow(
        record_id=record_id,
        patient_id=patient_id,
        resource_type="Observation",
        resource_id="obs-1",
        version=version,
        category=3,
        ciphertext=b"c",
        wrapped_key=b"k",
        kek_id="kek-1",
        sealed_meta=b"m",
        ciphertext_sha256=b"\x03" * 32,
        commitment=b"\x04" * 32,
        status="pending",
        created_at=NOW,
    )


def test_migrations_create_every_table_and_downgrade_cleanly(database_url: str) -> None:
    db = Database(database_url)
    tables = set(inspect(db.engine).get_table_names())
    assert {
        "patients",
        "records",
        "anchor_batches",
        "disclosures",
        "nonces",
        "leases",
        "retention_holds",
    } <= tables
    db.dispose()
    downgrade(database_url, "base")
    db = Database(database_url)
    assert "records" not in inspect(db.engine).get_table_names()
    db.dispose()
    upgrade(database_url)


def test_the_migrated_schema_is_the_models(database_url: str) -> None:
    db = Database(database_url)
    with db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert differences == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_what_waits_for_a_batch_is_found_through_its_index(database_url: str) -> None:
    """The relayer asks on every step: never a read of each pending row (each holds a
    ciphertext), only ix_records_waiting's entries of records not yet in a batch."""
    db = Database(database_url)
    with db.engine.connect() as conn:
        for statement, covering in ((_RECORDS_WAITING, True), (_PENDING_ENTRIES, False)):
            compiled = statement.compile(dialect=conn.dialect)
            params = tuple(compiled.params[name] or 10 for name in compiled.positiontup or [])
            plan = " ".join(
                row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params)
            )
            index = "COVERING INDEX" if covering else "INDEX"
            assert f"records USING {index} ix_records_waiting (status=? AND batch_id=?)" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
    db.dispose()


def test_latest_version_and_pending_queue(database_url: str) -> None:
    db = Database(database_url)
    pid = _patient(db)
    with db.session() as s:
        Records(s).add(_record(pid, 1, b"\x10" * 32))
        Records(s).add(_record(pid, 2, b"\x11" * 32))
    with db.session() as s:
        latest = Records(s).latest(pid, "Observation", "obs-1")
        assert latest is not None and latest.version == 2
        assert [r.version for r in Records(s).pending(10)] == [1, 2]
        assert Records(s).count_by_status() == {"pending": 2}
    db.dispose()


def test_same_version_twice_is_refused_by_the_schema(database_url: str) -> None:
    db = Database(database_url)
    pid = _patient(db)
    with db.session() as s:
        Records(s).add(_record(pid, 1, b"\x20" * 32))
    with pytest.raises(StoreConflict), db.session() as s:
        Records(s).add(_record(pid, 1, b"\x21" * 32))
    db.dispose()


def test_nonce_is_usable_once_until_purged(database_url: str) -> None:
    db = Database(database_url)
    with db.session() as s:
        Nonces(s).use("0xAbC0000000000000000000000000000000000001", "n-1", expires_at=100)
    with pytest.raises(NonceReused), db.session() as s:
        Nonces(s).use("0xabc0000000000000000000000000000000000001", "n-1", expires_at=100)
    with db.session() as s:
        Nonces(s).use("0xabc0000000000000000000000000000000000001", "n-2", expires_at=100)
        assert Nonces(s).purge(now=101) == 2
    with db.session() as s:
        Nonces(s).use("0xabc0000000000000000000000000000000000001", "n-1", expires_at=500)
    db.dispose()


def test_lease_has_one_holder_until_it_expires(database_url: str) -> None:
    db = Database(database_url)
    with db.session() as s:
        assert Leases(s).acquire("sender", "a", now_ms=1_000, ttl_ms=500)
    with db.session() as s:
        assert not Leases(s).acquire("sender", "b", now_ms=1_200, ttl_ms=500)
        assert Leases(s).acquire("sender", "a", now_ms=1_200, ttl_ms=500)  # renewal
    with db.session() as s:
        assert Leases(s).acquire("sender", "b", now_ms=1_800, ttl_ms=500)  # a's lease ran out
    with db.session() as s:
        assert not Leases(s).acquire("sender", "a", now_ms=1_900, ttl_ms=500)
        Leases(s).release("sender", "b")
    with db.session() as s:
        assert Leases(s).acquire("sender", "a", now_ms=1_900, ttl_ms=500)
    db.dispose()
