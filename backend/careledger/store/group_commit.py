"""Group commit: the small writes of many concurrent requests committed together.

Every signed request spends its nonce, and every disclosure is queued for the access log,
durably, before the gateway answers. Committed one request at a time that is a transaction
per write — on PostgreSQL an fsync each, on SQLite a turn at the one write lock — and the
ORM's work around each. Here requests hand their writes to one thread that commits whatever
arrived meanwhile in one transaction and then answers each request's future: under load a
commit serves dozens of requests; alone, a request waits for one commit, as before.

The thread speaks to the database driver directly, with statements compiled once (SQLite:
one C-level execute per row; PostgreSQL: psycopg's pipelined executemany, one round trip),
because SQLAlchemy's per-execute work, paid under the GIL, was what made commits slow.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Table, literal_column
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from careledger.errors import NonceReused, StoreConflict, StoreUnavailable
from careledger.store.compiled import (
    INTEGRITY_ERRORS,
    OPERATIONAL_ERRORS,
    Compiled,
    every_column_insert,
    insert_defaults,
)
from careledger.store.db import Database, take_write_turn
from careledger.store.models import ChainJobRow, DisclosureRow, NonceRow

log = logging.getLogger("careledger.store")


@dataclass(frozen=True)
class NonceSpend:
    """A request nonce to record: (key, nonce) may be recorded once while it is kept."""

    keyid: str
    nonce: str
    expires_at: int


@dataclass
class _Unit:
    """What one request commits: its nonce, a row, or a row guarded by its nonce (the row is
    written only if the nonce was fresh)."""

    nonce: NonceSpend | None
    table: str | None
    values: dict[str, Any] | None
    done: Future[Any] = field(default_factory=Future)


class GroupCommit:
    """One writer thread per process; every method returns a future that completes once the
    write is committed (with the new row's id, if a row was written), or fails with the
    store's error — NonceReused when the nonce was already spent."""

    MAX_BATCH = 512

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: deque[_Unit] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._statements = _Statements(db)
        self._raw: Any = None  # the writer thread's own pooled connection

    def spend_nonce(self, spend: NonceSpend) -> Future[None]:
        """Record a request nonce."""
        return self._submit(_Unit(spend, None, None))

    def queue_disclosure(self, values: dict[str, Any], *, nonce: NonceSpend | None = None) -> Future[int]:
        """Insert a disclosure row (column values) for the relayer to log on chain, with the
        request's nonce in the same transaction if given; the row's id."""
        return self._submit(_Unit(nonce, "disclosures", values))

    def queue_job(self, values: dict[str, Any], *, nonce: NonceSpend | None = None) -> Future[int]:
        """Insert a relay job row (column values), with the request's nonce if given; its id."""
        return self._submit(_Unit(nonce, "chain_jobs", values))

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _submit(self, unit: _Unit) -> Future[Any]:
        if unit.nonce is not None:
            unit.nonce = NonceSpend(unit.nonce.keyid.lower(), unit.nonce.nonce, unit.nonce.expires_at)
        with self._cond:
            if self._closed:
                unit.done.set_exception(StoreUnavailable("the gateway is shutting down"))
                return unit.done
            self._queue.append(unit)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()
            self._cond.notify()
        return unit.done

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closed:
                        self._cond.wait()
                    if not self._queue:
                        return
                    count = min(len(self._queue), self.MAX_BATCH)
                    batch = [self._queue.popleft() for _ in range(count)]
                self._commit(batch)
        finally:
            if self._raw is not None:
                self._raw.close()  # back to the pool

    def _commit(self, batch: list[_Unit]) -> None:
        try:
            results = self._write(batch)
        except Exception as exc:  # noqa: BLE001 - each waiting request gets the error, the thread lives
            self._forget_connection()
            # the driver's own error, or the one SQLAlchemy wrapped when the pool connected
            cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
            if _is_integrity(cause):
                self._one_by_one(batch)
            elif _is_operational(cause) or isinstance(exc, DBAPIError):
                _fail(batch, StoreUnavailable(f"database unavailable: {type(cause).__name__}"))
            else:
                log.error("group commit failed", extra={"fields": {"error": type(exc).__name__}})
                _fail(batch, StoreUnavailable("the store refused the write"))
            return
        for unit, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                unit.done.set_exception(result)
            else:
                unit.done.set_result(result)

    def _one_by_one(self, batch: list[_Unit]) -> None:
        """A batch broke a constraint: each unit on its own, to fail only the one at fault."""
        if len(batch) == 1:
            _fail(batch, StoreConflict("a concurrent change got there first"))
            return
        for unit in batch:
            self._commit([unit])

    def _write(self, batch: Sequence[_Unit]) -> list[Any]:
        """Write the batch in one transaction; per unit its row id, None, or NonceReused."""
        if self._raw is None:
            self._raw = self.db.engine.raw_connection()
        raw = self._raw
        try:
            results = self._statements.write(raw, batch)
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        return results

    def _forget_connection(self) -> None:
        if self._raw is not None:
            try:
                self._raw.invalidate()
            except Exception:  # noqa: BLE001 - a broken connection may fail to say goodbye
                log.warning("could not invalidate the group-commit connection")
            self._raw = None


class _Statements:
    """The writes, compiled once by SQLAlchemy for the database's dialect, with its own value
    conversions (timestamps as SQLAlchemy stores them, so the ORM reads them back)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sqlite = db.is_sqlite
        dialect = db.engine.dialect
        spend = (sqlite_insert if self.sqlite else postgresql_insert)(
            _table(NonceRow)
        ).on_conflict_do_nothing()
        self._spend = Compiled(spend if self.sqlite else spend.returning(literal_column("1")), dialect)
        self._inserts: dict[str, Compiled] = {}
        for model in (DisclosureRow, ChainJobRow):
            table = _table(model)
            statement = every_column_insert(table)
            self._inserts[table.name] = Compiled(
                statement if self.sqlite else statement.returning(table.c.id), dialect, insert_defaults(table)
            )

    def write(self, raw: Any, batch: Sequence[_Unit]) -> list[Any]:
        results: list[Any] = [None] * len(batch)
        fresh = self._spend_nonces(raw, batch, results)
        by_table: dict[str, list[int]] = {}
        for n, unit in enumerate(batch):
            if unit.table is not None and fresh[n]:
                by_table.setdefault(unit.table, []).append(n)
        for table, positions in by_table.items():
            compiled = self._inserts[table]
            rows = [compiled.params(batch[n].values or {}) for n in positions]
            for n, row_id in zip(positions, self._insert(raw, compiled.sql, rows), strict=True):
                results[n] = row_id
        return results

    def _spend_nonces(self, raw: Any, batch: Sequence[_Unit], results: list[Any]) -> list[bool]:
        """Record each unit's nonce; whether each unit may go on (False: a replay, whose
        result becomes NonceReused). The same nonce twice in one batch: the later is a replay."""
        fresh = [True] * len(batch)
        seen: set[tuple[str, str]] = set()
        spends: list[tuple[int, NonceSpend]] = []
        for n, unit in enumerate(batch):
            if unit.nonce is None:
                continue
            key = (unit.nonce.keyid, unit.nonce.nonce)
            if key in seen:
                fresh[n] = False
            else:
                seen.add(key)
                spends.append((n, unit.nonce))
        if spends:
            params = [
                self._spend.params({"keyid": s.keyid, "nonce": s.nonce, "expires_at": s.expires_at})
                for _, s in spends
            ]
            for (n, _), inserted in zip(spends, self._insert_flags(raw, params), strict=True):
                fresh[n] = fresh[n] and inserted
        for n, ok in enumerate(fresh):
            if not ok:
                results[n] = NonceReused("nonce already used")
        return fresh

    def _insert_flags(self, raw: Any, params: list[Any]) -> list[bool]:
        """Insert nonces, skipping those already kept; whether each was inserted."""
        return self._each(
            raw, self._spend.sql, params, lambda c: c.rowcount == 1, lambda r: bool(r.fetchall())
        )

    def _insert(self, raw: Any, sql: str, rows: list[Any]) -> list[int]:
        """Insert rows; their new ids, in order."""
        return self._each(raw, sql, rows, lambda c: int(c.lastrowid), lambda r: int(r.fetchone()[0]))

    def _each(
        self,
        raw: Any,
        sql: str,
        params: list[Any],
        sqlite_outcome: Callable[[Any], Any],
        postgresql_outcome: Callable[[Any], Any],
    ) -> list[Any]:
        """Run `sql` once per parameter set and read each one's outcome: on SQLite one C-level
        execute after another (under this process's write turn), on PostgreSQL one pipelined
        executemany whose per-statement results are read in order."""
        cursor = raw.cursor()
        try:
            if self.sqlite:
                take_write_turn(self.db.engine, raw.dbapi_connection)
                outcomes = []
                for row in params:
                    cursor.execute(sql, row)
                    outcomes.append(sqlite_outcome(cursor))
                return outcomes
            cursor.executemany(sql, params, returning=True)
            return [postgresql_outcome(result) for result in cursor.results()]
        finally:
            cursor.close()


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _is_integrity(exc: BaseException) -> bool:
    return isinstance(exc, INTEGRITY_ERRORS)


def _is_operational(exc: BaseException) -> bool:
    return isinstance(exc, (*OPERATIONAL_ERRORS, psycopg.InterfaceError))


def _fail(batch: Sequence[_Unit], error: Exception) -> None:
    for unit in batch:
        unit.done.set_exception(error)
