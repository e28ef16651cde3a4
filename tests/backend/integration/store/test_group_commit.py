"""Group commit on both databases: nonces spent once, rows inserted with their ids, a
batch of concurrent writers committed together, and errors handed to every waiter."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from careledger.errors import NonceReused, StoreConflict, StoreUnavailable
from careledger.store.db import Database
from careledger.store.group_commit import GroupCommit, NonceSpend
from careledger.store.models import ChainJobRow, DisclosureRow, NonceRow

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 5, tzinfo=UTC)
KEY = "0xAbC0000000000000000000000000000000000001"


def _disclosure(n: int) -> dict[str, Any]:
    return {
        "record_id": n.to_bytes(32, "big"),
        "requester": KEY,
        "member": KEY,
        "purpose": 3,
        "break_glass": False,
        "checked_block": n,
        "basis": b"\x02" * 32,
        "request_hash": b"\x03" * 32,
        "signature": b"\x04" * 65,
        "signature_base": f"base {n}",
        "acting_user": None,
        "reason": None,
        "status": "pending",
        "tx_id": None,
        "reviewed": False,
        "created_at": NOW,
    }


@pytest.fixture
def commits(database_url: str) -> Any:
    db = Database(database_url)
    writer = GroupCommit(db)
    yield writer, db
    writer.close()
    db.dispose()


def test_nonce_spent_once_whatever_the_case_of_the_key(commits: Any) -> None:
    writer, db = commits
    writer.spend_nonce(NonceSpend(KEY, "n-1", 100)).result()
    with pytest.raises(NonceReused):
        writer.spend_nonce(NonceSpend(KEY.lower(), "n-1", 100)).result()
    writer.spend_nonce(NonceSpend(KEY, "n-2", 100)).result()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(NonceRow)) == 2


def test_concurrent_replays_of_one_nonce_let_exactly_one_through(commits: Any) -> None:
    writer, _ = commits
    barrier = threading.Barrier(16)
    outcomes: list[str] = []

    def spend() -> None:
        barrier.wait()
        try:
            writer.spend_nonce(NonceSpend(KEY, "same", 100)).result()
            outcomes.append("spent")
        except NonceReused:
            outcomes.append("reused")

    threads = [threading.Thread(target=spend) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["reused"] * 15 + ["spent"]


def test_rows_come_back_with_their_own_ids_in_shared_commits(commits: Any) -> None:
    writer, db = commits
    futures = [writer.queue_disclosure(_disclosure(n)) for n in range(300)]
    jobs = [
        writer.queue_job({"kind": "grant", "payload": f'{{"n": {n}}}', "status": "pending", "tx_id": None,
                          "result": None, "error": None, "created_at": NOW, "done_at": None})
        for n in range(50)
    ]  # fmt: skip
    ids = [f.result() for f in futures]
    job_ids = [f.result() for f in jobs]
    assert len(set(ids)) == 300 and len(set(job_ids)) == 50
    with db.session() as s:
        stored = {row.id: row.checked_block for row in s.scalars(select(DisclosureRow))}
        payloads = {row.id: row.payload for row in s.scalars(select(ChainJobRow))}
    assert [stored[i] for i in ids] == list(range(300))  # each future got its own row's id
    assert [payloads[i] for i in job_ids] == [f'{{"n": {n}}}' for n in range(50)]


def test_a_closed_writer_refuses_new_writes(commits: Any) -> None:
    writer, _ = commits
    writer.spend_nonce(NonceSpend(KEY, "before", 100)).result()
    writer.close()
    with pytest.raises(StoreUnavailable, match="shutting down"):
        writer.spend_nonce(NonceSpend(KEY, "after", 100)).result()


def test_a_failing_store_fails_every_waiter_and_the_writer_recovers(database_url: str) -> None:
    db = Database(database_url)
    writer = GroupCommit(db)
    try:
        bad = _disclosure(1) | {"checked_block": None}  # NOT NULL: the whole batch is refused
        with pytest.raises(StoreConflict):
            writer.queue_disclosure(bad).result()
        assert writer.queue_disclosure(_disclosure(2)).result() > 0  # the thread lives on
    finally:
        writer.close()
        db.dispose()


def test_a_row_guarded_by_a_replayed_nonce_is_not_written(commits: Any) -> None:
    writer, db = commits
    spend = NonceSpend(KEY, "guard", 100)
    first = writer.queue_disclosure(_disclosure(1), nonce=spend).result()
    with pytest.raises(NonceReused):
        writer.queue_disclosure(_disclosure(2), nonce=spend).result()
    both = [writer.queue_disclosure(_disclosure(n), nonce=NonceSpend(KEY, "pair", 100)) for n in (3, 4)]
    outcomes = []
    for future in both:
        try:
            outcomes.append(future.result())
        except NonceReused:
            outcomes.append("reused")
    assert outcomes.count("reused") == 1
    with db.session() as s:
        blocks = sorted(row.checked_block for row in s.scalars(select(DisclosureRow)))
    assert first > 0 and blocks in ([1, 3], [1, 4])  # the replays wrote nothing


def test_timestamps_written_by_the_driver_are_those_the_orm_writes(commits: Any) -> None:
    # Statements run by the driver convert values as the dialect's own types do: on SQLite a
    # timestamp is SQLAlchemy's text (which MIN() and ORDER BY compare), not sqlite3's adapter's
    writer, db = commits
    driver_id = writer.queue_disclosure(_disclosure(1)).result()
    with db.session() as s:
        orm_row = DisclosureRow(**(_disclosure(2) | {"created_at": NOW}))
        s.add(orm_row)
        s.flush()
        orm_id = orm_row.id
    with db.engine.connect() as conn:
        stored = dict(conn.exec_driver_sql("SELECT id, created_at FROM disclosures").fetchall())
    assert stored[driver_id] == stored[orm_id]
