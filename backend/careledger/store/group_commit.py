"""Group commit: the small writes of many concurrent requests committed together.

Every signed request spends its nonce, and every disclosure is queued for the access log,
durably, before the gateway answers. Committed one request at a time that is a transaction
per write — on PostgreSQL an fsync each, on SQLite a turn at the one write lock and the ORM's
work around it. Here requests hand their writes to one thread that commits whatever arrived
meanwhile in one transaction (a multi-row INSERT per table) and then answers each request's
future: under load a commit serves dozens of requests; alone, a request waits for one
commit, as before.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple

from sqlalchemy import Connection, Insert, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError

from careledger.errors import NonceReused, StoreConflict, StoreUnavailable
from careledger.store.db import Database
from careledger.store.models import ChainJobRow, DisclosureRow, NonceRow

log = logging.getLogger("careledger.store")


class _Nonce(NamedTuple):
    keyid: str
    nonce: str
    expires_at: int
    done: Future[None]


class _Row(NamedTuple):
    table: Table
    values: dict[str, Any]
    done: Future[Any]  # completes with the new row's id


class GroupCommit:
    """One writer thread per process; `spend_nonce` and `queue_disclosure` return futures
    that complete once the write is committed (or fail with the store's error)."""

    MAX_BATCH = 512

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: deque[_Nonce | _Row] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        module = sqlite if db.is_sqlite else postgresql
        self._spend: Insert = (
            module.insert(NonceRow.__table__)
            .on_conflict_do_nothing()
            .returning(NonceRow.keyid, NonceRow.nonce)
        )

    def spend_nonce(self, keyid: str, nonce: str, expires_at: int) -> Future[None]:
        """Record a request nonce; the future fails with NonceReused if the key used it before."""
        return self._submit(_Nonce(keyid.lower(), nonce, expires_at, Future()))

    def queue_disclosure(self, values: dict[str, Any]) -> Future[int]:
        """Insert a disclosure row (column values) for the relayer to log on chain; its id."""
        return self._submit(_Row(DisclosureRow.__table__, values, Future()))  # type: ignore[arg-type]

    def queue_job(self, values: dict[str, Any]) -> Future[int]:
        """Insert a relay job row (column values); its id."""
        return self._submit(_Row(ChainJobRow.__table__, values, Future()))  # type: ignore[arg-type]

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _submit(self, item: _Nonce | _Row) -> Future[Any]:
        with self._cond:
            if self._closed:
                item.done.set_exception(StoreUnavailable("the gateway is shutting down"))
                return item.done
            self._queue.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()
            self._cond.notify()
        return item.done

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                count = min(len(self._queue), self.MAX_BATCH)
                batch = [self._queue.popleft() for _ in range(count)]
            self._commit(batch)

    def _commit(self, batch: list[_Nonce | _Row]) -> None:
        nonces = [i for i in batch if isinstance(i, _Nonce)]
        rows = [i for i in batch if isinstance(i, _Row)]
        try:
            with self.db.engine.begin() as conn:
                reused = self._spend_all(conn, nonces)
                ids = self._insert_all(conn, rows)
        except IntegrityError:
            if len(batch) == 1:
                _fail(batch, StoreConflict("a concurrent change got there first"))
                return
            for item in batch:  # find the one at fault: each on its own
                self._commit([item])
            return
        except OperationalError as exc:
            _fail(batch, StoreUnavailable(f"database unavailable: {exc.orig.__class__.__name__}"))
            return
        except Exception as exc:  # noqa: BLE001 - each waiting request gets the error, the thread lives
            log.error("group commit failed", extra={"fields": {"error": type(exc).__name__}})
            _fail(batch, StoreUnavailable("the store refused the write"))
            return
        for item in nonces:
            if id(item) in reused:
                item.done.set_exception(NonceReused("nonce already used"))
            else:
                item.done.set_result(None)
        for row, row_id in zip(rows, ids, strict=True):
            row.done.set_result(row_id)

    def _spend_all(self, conn: Connection, nonces: Sequence[_Nonce]) -> set[int]:
        """Insert the nonces; the ids of the items whose (key, nonce) was already taken."""
        if not nonces:
            return set()
        first: dict[tuple[str, str], _Nonce] = {}
        reused = set()
        for item in nonces:  # the same nonce twice in one batch: the later one is a replay
            if first.setdefault((item.keyid, item.nonce), item) is not item:
                reused.add(id(item))
        params = [{"keyid": k, "nonce": n, "expires_at": i.expires_at} for (k, n), i in first.items()]
        inserted = {(str(k), str(n)) for k, n in conn.execute(self._spend, params)}
        reused.update(id(i) for key, i in first.items() if key not in inserted)
        return reused

    @staticmethod
    def _insert_all(conn: Connection, rows: Sequence[_Row]) -> list[int]:
        """Insert the rows, a multi-row INSERT per table; their new ids, in the order given."""
        by_table: dict[Table, list[int]] = {}
        for n, row in enumerate(rows):
            by_table.setdefault(row.table, []).append(n)
        ids = [0] * len(rows)
        for table, positions in by_table.items():
            statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            inserted = conn.execute(statement, [rows[n].values for n in positions])
            for n, (row_id,) in zip(positions, inserted, strict=True):
                ids[n] = int(row_id)
        return ids


def _fail(batch: Sequence[_Nonce | _Row], error: Exception) -> None:
    for item in batch:
        item.done.set_exception(error)
