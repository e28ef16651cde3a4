"""Repositories: every query the gateway runs. Services compose them inside one session."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Row, Select, Table, bindparam, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from careledger.errors import NonceReused, StoreConflict, StoreUnavailable
from careledger.store.compiled import (
    INTEGRITY_ERRORS,
    OPERATIONAL_ERRORS,
    Compiled,
    every_column_insert,
    insert_defaults,
)
from careledger.store.db import Database, take_write_turn
from careledger.store.models import (
    AnchorBatchRow,
    ChainJobRow,
    ChainTxRow,
    DisclosureRow,
    GatewayStateRow,
    LeaseRow,
    NonceRow,
    PatientRow,
    RecordRow,
    RetentionHoldRow,
)


class Patients:
    def __init__(self, session: Session) -> None:
        self.s = session

    def by_address(self, address: str) -> PatientRow | None:
        return self.s.scalar(select(PatientRow).where(PatientRow.address == address))

    def by_id(self, patient_id: int) -> PatientRow | None:
        return self.s.get(PatientRow, patient_id)

    def by_local_reference(self, reference: str) -> PatientKey | None:
        """The pseudonym that receives this custodian's records for a patient reference: the
        newest enrolled one (a rotated pseudonym takes over once its enrollment completes; an
        unfinished one never stops records), else the newest enrolling one."""
        rows = _driver_rows(self.s, _BY_LOCAL_REFERENCE, {"reference": reference})
        return PatientKey(*rows[0]) if rows else None

    def add(self, row: PatientRow) -> PatientRow:
        self.s.add(row)
        self.s.flush()
        return row


class PatientKey(NamedTuple):
    """What storing a patient's records needs of the patient row."""

    id: int
    address: str
    status: str


class LatestVersion(NamedTuple):
    """What ingest needs of a record's latest stored version."""

    resource_type: str
    resource_id: str
    version: int
    status: str
    record_id: bytes
    sealed_meta: bytes | None
    wrapped_key: bytes | None


class ReadableRecord(NamedTuple):
    """What serving a read needs of a record version, and its patient's address."""

    record_id: bytes
    patient: str
    status: str
    resource_type: str
    resource_id: str
    version: int
    category: int
    commitment: bytes
    ciphertext: bytes | None
    sealed_meta: bytes | None
    wrapped_key: bytes | None
    kek_id: str | None
    ciphertext_sha256: bytes | None


# Built once: composing a statement costs several times running it (SQLAlchemy's cache key).
_READABLE = (
    select(RecordRow.record_id, PatientRow.address, RecordRow.status, RecordRow.resource_type,
           RecordRow.resource_id, RecordRow.version, RecordRow.category, RecordRow.commitment,
           RecordRow.ciphertext, RecordRow.sealed_meta, RecordRow.wrapped_key, RecordRow.kek_id,
           RecordRow.ciphertext_sha256)
    .join(PatientRow, PatientRow.id == RecordRow.patient_id)
    .where(RecordRow.record_id == bindparam("record_id"))
)  # fmt: skip


async def readable_record_async(db: Database, record_id: bytes) -> ReadableRecord | None:
    """readable_record from an event loop (Database.fetch_one: never blocking it on PostgreSQL)."""
    row = await db.fetch_one(_READABLE, {"record_id": record_id})
    return None if row is None else ReadableRecord._make(row)


def readable_record(conn: Connection, record_id: bytes) -> ReadableRecord | None:
    """A record version with its patient, for reading: one prepared query on a plain connection."""
    row = conn.execute(_READABLE, {"record_id": record_id}).first()
    return None if row is None else ReadableRecord._make(row)


def _aware(value: datetime | str | None) -> datetime | None:
    """A min()/max() of a timestamp column: SQLite hands it back as naive text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


class Records:
    def __init__(self, session: Session) -> None:
        self.s = session

    def by_id(self, row_id: int) -> RecordRow | None:
        return self.s.get(RecordRow, row_id)

    def by_record_id(self, record_id: bytes) -> RecordRow | None:
        return self.s.scalar(select(RecordRow).where(RecordRow.record_id == record_id))

    def latest_of(
        self, patient_id: int, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], LatestVersion]:
        """The latest version of each (resource type, id) of a patient that has one, in one query."""
        wanted = set(keys)
        ids = sorted({i for _, i in wanted})
        found: dict[tuple[str, str], LatestVersion] = {}
        if not ids:
            return found
        params: dict[str, Any] = {f"id{n}": i for n, i in enumerate(ids)} | {"patient": patient_id}
        for row in map(LatestVersion._make, _driver_rows(self.s, _latest_of(len(ids)), params)):
            key = (row.resource_type, row.resource_id)
            if key in wanted and (key not in found or row.version > found[key].version):
                found[key] = row
        return found

    def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows given as column values, in the session's transaction."""
        _driver_write(self.s, _INSERT_RECORD, rows)

    def latest(self, patient_id: int, resource_type: str, resource_id: str) -> RecordRow | None:
        return self.s.scalar(
            select(RecordRow)
            .where(
                RecordRow.patient_id == patient_id,
                RecordRow.resource_type == resource_type,
                RecordRow.resource_id == resource_id,
            )
            .order_by(RecordRow.version.desc())
            .limit(1)
        )

    def versions(self, patient_id: int, resource_type: str, resource_id: str) -> Sequence[RecordRow]:
        return self.s.scalars(
            select(RecordRow)
            .where(
                RecordRow.patient_id == patient_id,
                RecordRow.resource_type == resource_type,
                RecordRow.resource_id == resource_id,
            )
            .order_by(RecordRow.version)
        ).all()

    def of_patient(self, patient_id: int) -> Sequence[RecordRow]:
        return self.s.scalars(
            select(RecordRow).where(RecordRow.patient_id == patient_id).order_by(RecordRow.id)
        ).all()

    def add(self, row: RecordRow) -> RecordRow:
        self.s.add(row)
        self.s.flush()
        return row

    def pending(self, limit: int) -> Sequence[RecordRow]:
        return self.s.scalars(
            select(RecordRow).where(*_WAITING_FOR_BATCH)
            .order_by(RecordRow.id).limit(limit)
        ).all()  # fmt: skip

    def pending_entries(self, limit: int) -> list[tuple[int, str, int, bytes, bytes | None]]:
        """(row id, patient address, category, commitment, supersedes) of the oldest records
        waiting for a batch, at most `limit` (anchor_batch_max): only what anchoring needs,
        not the ciphertexts, as plain tuples from the driver."""
        return cast(
            list[tuple[int, str, int, bytes, bytes | None]],
            _driver_rows(self.s, _PENDING_ENTRIES, {"limit": limit}),
        )

    def pending_summary(self, limit: int) -> tuple[int, datetime | None]:
        """How many of the oldest `limit` records wait for a batch, and the oldest's time."""
        count, first = self.s.execute(_RECORDS_WAITING, {"limit": limit}).one()
        return int(count or 0), _aware(first)

    def assign_batch(self, batch_id: int, row_ids: Sequence[int]) -> None:
        """Put rows into a batch at leaf indexes 0, 1, ... in the order given (one statement)."""
        _driver_write(
            self.s,
            _ASSIGN_LEAF,
            [{"row_id": row_id, "batch": batch_id, "leaf": n} for n, row_id in enumerate(row_ids)],
        )

    def mark_anchored(self, batch_id: int, at: datetime) -> int:
        """The batch's pending rows become anchored; how many did."""
        result = self.s.execute(
            update(RecordRow)
            .where(RecordRow.batch_id == batch_id, RecordRow.status == "pending")
            .values(status="anchored", anchored_at=at)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def release_batch(self, batch_id: int) -> None:
        """The batch failed: its rows wait for the next one."""
        self.s.execute(
            update(RecordRow)
            .where(RecordRow.batch_id == batch_id)
            .values(batch_id=None, leaf_index=None)
            .execution_options(synchronize_session=False)
        )

    def oldest_pending_created_at(self) -> datetime | None:
        return self.s.scalar(select(func.min(RecordRow.created_at)).where(*_WAITING_FOR_BATCH))

    def count_by_status(self) -> dict[str, int]:
        rows = self.s.execute(select(RecordRow.status, func.count()).group_by(RecordRow.status)).all()
        return {status: int(count) for status, count in rows}

    def in_batch(self, batch_id: int) -> Sequence[RecordRow]:
        return self.s.scalars(
            select(RecordRow).where(RecordRow.batch_id == batch_id).order_by(RecordRow.leaf_index)
        ).all()

    def page(self, after_id: int, limit: int) -> Sequence[RecordRow]:
        """Up to `limit` rows after row `after_id`, in row order (an auditor's export)."""
        return self.s.scalars(
            select(RecordRow).where(RecordRow.id > after_id).order_by(RecordRow.id).limit(limit)
        ).all()

    def with_kek_other_than(self, kek_id: str, limit: int) -> Sequence[RecordRow]:
        return self.s.scalars(
            select(RecordRow).where(RecordRow.kek_id.is_not(None), RecordRow.kek_id != kek_id)
            .order_by(RecordRow.id).limit(limit)
        ).all()  # fmt: skip


class Batches:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, row: AnchorBatchRow) -> AnchorBatchRow:
        self.s.add(row)
        self.s.flush()
        return row

    def by_id(self, batch_id: int) -> AnchorBatchRow | None:
        return self.s.get(AnchorBatchRow, batch_id)

    def by_tx(self, tx_id: int) -> AnchorBatchRow | None:
        return self.s.scalar(select(AnchorBatchRow).where(AnchorBatchRow.tx_id == tx_id))


PendingEntry = Row[int, bytes, str, int, bool, int, bytes, bytes, bytes]


class Disclosures:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, row: DisclosureRow) -> DisclosureRow:
        self.s.add(row)
        self.s.flush()
        return row

    def pending(self, limit: int) -> Sequence[DisclosureRow]:
        return self.s.scalars(
            select(DisclosureRow)
            .where(DisclosureRow.status == "pending")
            .order_by(DisclosureRow.id)
            .limit(limit)
        ).all()

    def pending_summary(self, limit: int) -> tuple[int, datetime | None]:
        """How many of the oldest `limit` disclosures wait for the log, and the oldest's time
        (a cheap look before loading a batch)."""
        count, first = self.s.execute(_DISCLOSURES_WAITING, {"limit": limit}).one()
        return int(count or 0), _aware(first)

    def pending_entries(
        self, limit: int
    ) -> Sequence[Row[int, bytes, str, int, bool, int, bytes, bytes, bytes]]:
        """(id, record_id, requester, purpose, break_glass, checked_block, basis, request_hash,
        signature) of the oldest pending disclosures: what the log entry needs, nothing more."""
        return self.s.execute(
            select(DisclosureRow.id, DisclosureRow.record_id, DisclosureRow.requester, DisclosureRow.purpose,
                   DisclosureRow.break_glass, DisclosureRow.checked_block, DisclosureRow.basis,
                   DisclosureRow.request_hash, DisclosureRow.signature)
            .where(DisclosureRow.status == "pending")
            .order_by(DisclosureRow.id)
            .limit(limit)
        ).all()  # fmt: skip

    def set_status(self, ids: Sequence[int], status: str, tx_id: int | None = None) -> None:
        """One UPDATE for many rows: their status, and the transaction carrying them."""
        if ids:
            self.s.execute(
                update(DisclosureRow)
                .where(DisclosureRow.id.in_(ids))
                .values(status=status, tx_id=tx_id)
                .execution_options(synchronize_session=False)
            )

    def settle_tx(self, tx_id: int, logged: bool) -> int:
        """A log transaction ended: its rows are logged, or wait for the next batch; how many."""
        result = self.s.execute(
            update(DisclosureRow)
            .where(DisclosureRow.tx_id == tx_id)
            .values(status="logged" if logged else "pending", tx_id=tx_id if logged else None)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def sending(self) -> Sequence[DisclosureRow]:
        return self.s.scalars(select(DisclosureRow).where(DisclosureRow.status == "sending")).all()

    def of_record(self, record_id: bytes) -> Sequence[DisclosureRow]:
        return self.s.scalars(select(DisclosureRow).where(DisclosureRow.record_id == record_id)).all()

    def break_glass_since(self, member: str, since: datetime) -> tuple[int, datetime | None]:
        """How many break-glass disclosures of `member` since `since`, and the oldest of them."""
        count, oldest = self.s.execute(
            select(func.count(), func.min(DisclosureRow.created_at)).where(
                DisclosureRow.member == member,
                DisclosureRow.break_glass.is_(True),
                DisclosureRow.created_at >= since,
            )
        ).one()
        return int(count or 0), _aware(oldest)

    def count_by_status(self) -> dict[str, int]:
        rows = self.s.execute(select(DisclosureRow.status, func.count()).group_by(DisclosureRow.status)).all()
        return {status: int(count) for status, count in rows}


class ChainTxs:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, row: ChainTxRow) -> ChainTxRow:
        self.s.add(row)
        self.s.flush()
        return row

    def by_id(self, tx_id: int) -> ChainTxRow | None:
        return self.s.get(ChainTxRow, tx_id)

    def unsettled(self, sender: str) -> Sequence[Row[int, str, str, bytes, int]]:
        """(id, purpose, tx_hash, raw, nonce) of the transactions signed but not known to be
        mined, lowest nonce first."""
        return self.s.execute(_UNSETTLED, {"sender": sender}).all()


class ChainJobs:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, row: ChainJobRow) -> ChainJobRow:
        self.s.add(row)
        self.s.flush()
        return row

    def by_id(self, job_id: int) -> ChainJobRow | None:
        return self.s.get(ChainJobRow, job_id)

    def next_pending(self, priority: tuple[str, ...]) -> ChainJobRow | None:
        """The oldest pending job of the first kind in `priority` that has one."""
        return self.s.scalar(_next_job(priority))

    def by_tx(self, tx_id: int) -> Sequence[ChainJobRow]:
        return self.s.scalars(select(ChainJobRow).where(ChainJobRow.tx_id == tx_id)).all()

    def by_ids(self, ids: Sequence[int]) -> Sequence[ChainJobRow]:
        return self.s.scalars(select(ChainJobRow).where(ChainJobRow.id.in_(ids))).all()

    def finished_among(self, ids: Sequence[int]) -> Sequence[int]:
        """Which of these jobs are done or failed."""
        return self.s.scalars(
            select(ChainJobRow.id).where(ChainJobRow.id.in_(ids), ChainJobRow.status.in_(("done", "failed")))
        ).all()

    def pending_of_kind(self, kind: str, limit: int) -> Sequence[ChainJobRow]:
        """The oldest pending jobs of one kind, oldest first."""
        return self.s.scalars(
            select(ChainJobRow)
            .where(ChainJobRow.status == "pending", ChainJobRow.kind == kind)
            .order_by(ChainJobRow.id)
            .limit(limit)
        ).all()

    def count_pending(self) -> int:
        return int(
            self.s.scalar(select(func.count()).where(ChainJobRow.status.in_(("pending", "sent")))) or 0
        )


class Nonces:
    def __init__(self, session: Session) -> None:
        self.s = session

    def use(self, keyid: str, nonce: str, expires_at: int) -> None:
        """Record a nonce; NonceReused if this key already used it (and it is still kept)."""
        try:
            with self.s.begin_nested():
                self.s.add(NonceRow(keyid=keyid.lower(), nonce=nonce, expires_at=expires_at))
        except IntegrityError:
            raise NonceReused("nonce already used") from None

    def purge(self, now: int) -> int:
        result = self.s.execute(delete(NonceRow).where(NonceRow.expires_at < now))
        return int(getattr(result, "rowcount", 0) or 0)


class Leases:
    def __init__(self, session: Session) -> None:
        self.s = session

    def acquire(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
        """Take or renew lease `name` for `holder`; False while another holder's lease runs."""
        expires = now_ms + ttl_ms
        renewed = self.s.execute(
            update(LeaseRow)
            .where(LeaseRow.name == name, (LeaseRow.holder == holder) | (LeaseRow.expires_at_ms < now_ms))
            .values(holder=holder, expires_at_ms=expires)
        )
        if getattr(renewed, "rowcount", 0):
            return True
        try:
            with self.s.begin_nested():
                self.s.add(LeaseRow(name=name, holder=holder, expires_at_ms=expires))
        except IntegrityError:
            return False
        return True

    def release(self, name: str, holder: str) -> None:
        self.s.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder))


class RetentionHolds:
    def __init__(self, session: Session) -> None:
        self.s = session

    def for_patient(self, patient_id: int) -> Sequence[RetentionHoldRow]:
        return self.s.scalars(select(RetentionHoldRow).where(RetentionHoldRow.patient_id == patient_id)).all()

    def add(self, row: RetentionHoldRow) -> RetentionHoldRow:
        self.s.add(row)
        self.s.flush()
        return row


class GatewayState:
    """Named values shared by a gateway's processes; `read(..., lock=True)` holds a share lock
    (PostgreSQL) so a rotation cannot change the value under a running transaction."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def read(self, name: str, *, lock: bool = False) -> str | None:
        rows = _driver_rows(self.s, _STATE_SHARED if lock else _STATE, {"name": name})
        return str(rows[0][0]) if rows else None

    def write(self, name: str, value: str) -> None:
        row = self.s.scalar(select(GatewayStateRow).where(GatewayStateRow.name == name).with_for_update())
        if row is None:
            self.s.add(GatewayStateRow(name=name, value=value))
        else:
            row.value = value
        self.s.flush()


# Statements of the hot paths, built once (composing one costs more than running it).
def _waiting(table: Any, *conditions: Any) -> Any:
    oldest = (
        select(table.c.created_at)
        .where(*conditions)
        .order_by(table.c.id)
        .limit(bindparam("limit"))
        .subquery()
    )
    return select(func.count(), func.min(oldest.c.created_at))


_RECORDS = cast(Table, RecordRow.__table__)
# A record accepted and not yet in an anchor batch: what ix_records_waiting is ordered by.
_WAITING_FOR_BATCH = (_RECORDS.c.status == "pending", _RECORDS.c.batch_id.is_(None))
_RECORDS_WAITING = _waiting(_RECORDS, *_WAITING_FOR_BATCH)
_DISCLOSURES_WAITING = _waiting(DisclosureRow.__table__, DisclosureRow.status == "pending")
_UNSETTLED = (
    select(ChainTxRow.id, ChainTxRow.purpose, ChainTxRow.tx_hash, ChainTxRow.raw, ChainTxRow.nonce)
    .where(ChainTxRow.sender == bindparam("sender"), ChainTxRow.status == "signed")
    .order_by(ChainTxRow.nonce)
)
_BY_LOCAL_REFERENCE = (
    select(PatientRow.id, PatientRow.address, PatientRow.status)
    .where(PatientRow.local_reference == bindparam("reference"))
    .order_by((PatientRow.status == "enrolled").desc(), PatientRow.id.desc())
    .limit(1)
)
_INSERT_RECORD = every_column_insert(_RECORDS)


@lru_cache(maxsize=64)
def _latest_of(count: int) -> Select[Any]:
    """The versions of a patient's records with any of `count` resource ids."""
    columns = [getattr(_RECORDS.c, name) for name in LatestVersion._fields]
    return select(*columns).where(
        _RECORDS.c.patient_id == bindparam("patient"),
        _RECORDS.c.resource_id.in_([bindparam(f"id{n}") for n in range(count)]),
    )


@lru_cache(maxsize=128)
def _compiled(statement: Any, dialect: Any) -> Compiled:
    return Compiled(statement, dialect, insert_defaults(statement.table) if statement.is_insert else None)


@contextmanager
def _driver_cursor(s: Session, statement: Any, *, writes: bool) -> Iterator[tuple[Any, Compiled]]:
    """The driver's cursor on the session's connection (in its transaction), with `statement`
    compiled once per dialect; a writer first takes this process's SQLite write turn. The
    drivers' errors become the store's."""
    conn = s.connection()
    compiled = _compiled(statement, conn.dialect)
    raw = conn.connection.dbapi_connection
    assert raw is not None  # the session's connection is open
    if writes:
        take_write_turn(conn.engine, raw)
    cursor = raw.cursor()
    try:
        yield cursor, compiled
    except INTEGRITY_ERRORS:
        raise StoreConflict("a concurrent change got there first") from None
    except OPERATIONAL_ERRORS as exc:
        raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from None
    finally:
        cursor.close()


def _driver_write(s: Session, statement: Any, rows: Sequence[dict[str, Any]]) -> None:
    """An INSERT or UPDATE of the hot path for each of `rows`, in the session's transaction:
    one executemany by the driver (SQLAlchemy's own executemany cost a tenth of ingest)."""
    if rows:
        with _driver_cursor(s, statement, writes=True) as (cursor, compiled):
            cursor.executemany(compiled.sql, [compiled.params(row) for row in rows])


def _driver_rows(s: Session, statement: Any, values: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A SELECT of the hot path, in the session's transaction, run by the driver itself: the
    rows as plain tuples (no ORM identity map, no result processing: the columns read here
    need none)."""
    with _driver_cursor(s, statement, writes=False) as (cursor, compiled):
        cursor.execute(compiled.sql, compiled.params(values))
        return list(cursor.fetchall())


_ASSIGN_LEAF = (
    update(_RECORDS)
    .where(_RECORDS.c.id == bindparam("row_id"))
    .values(batch_id=bindparam("batch"), leaf_index=bindparam("leaf"))
)
_PENDING_ENTRIES = (
    select(_RECORDS.c.id, PatientRow.address, _RECORDS.c.category, _RECORDS.c.commitment,
           _RECORDS.c.supersedes)
    .join(PatientRow, PatientRow.id == _RECORDS.c.patient_id)
    .where(*_WAITING_FOR_BATCH)
    .order_by(_RECORDS.c.id).limit(bindparam("limit"))
)  # fmt: skip
_STATE = select(GatewayStateRow.value).where(GatewayStateRow.name == bindparam("name"))
_STATE_SHARED = _STATE.with_for_update(read=True)


@lru_cache(maxsize=8)
def _next_job(priority: tuple[str, ...]) -> Select[ChainJobRow]:
    rank = case({kind: i for i, kind in enumerate(priority)}, value=ChainJobRow.kind, else_=len(priority))
    return select(ChainJobRow).where(ChainJobRow.status == "pending").order_by(rank, ChainJobRow.id).limit(1)
