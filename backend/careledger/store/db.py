"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, Select, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from careledger.errors import StoreConflict, StoreUnavailable

__all__ = ["Connection", "Database", "Session", "make_engine"]


SQLITE_BUSY_TIMEOUT_S = 30.0


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url` (sqlite:///path or postgresql+psycopg://...).

    SQLite waits `?timeout=` seconds (default 30) for another writer's lock before the store
    counts as unavailable; PostgreSQL connections are checked before use, so ones the server
    dropped are replaced instead of failing a request.
    """
    if url.startswith("sqlite"):
        parsed = make_url(url)
        timeout = float(str(parsed.query.get("timeout", SQLITE_BUSY_TIMEOUT_S)))
        turns = WriteTurns(timeout)
        engine = create_engine(
            parsed.difference_update_query(["timeout"]),
            echo=echo,
            connect_args={"timeout": timeout, "check_same_thread": False, "factory": turns.connection_class},
        )
        event.listen(engine, "connect", lambda conn, _record: _sqlite_pragmas(conn, timeout))
        event.listen(engine, "before_cursor_execute", turns.before_execute)
        _TURNS[engine] = turns
        return engine
    engine = create_engine(url, echo=echo, pool_size=5, max_overflow=10)
    event.listen(engine.pool, "checkin", _note_checkin)
    event.listen(engine.pool, "checkout", _ping_if_idle)
    return engine


# A pooled PostgreSQL connection idle longer than this is pinged before use, so one the server
# dropped is replaced instead of failing a request. SQLAlchemy's pool_pre_ping pings on every
# checkout: a round trip per request (a read's lookup spent half its time there).
IDLE_BEFORE_PING_S = 2.0


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    checked_in = record.info.get("checked_in_at")
    if checked_in is None or time.monotonic() - checked_in < IDLE_BEFORE_PING_S:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()
    except Exception as exc:  # noqa: BLE001 - any failure: the pool replaces the connection
        raise DisconnectionError(f"a pooled connection no longer answers: {type(exc).__name__}") from None


# Each SQLite engine's turns (PostgreSQL engines have none).
_TURNS: weakref.WeakKeyDictionary[Engine, WriteTurns] = weakref.WeakKeyDictionary()
_WRITE = re.compile(r"\s*(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


class WriteTurns:
    """Turns at SQLite's one write lock for the threads of this process, handed over the
    moment the holder commits.

    SQLite itself makes a second writer sleep and retry — 1, 2, 5, 10, 15, 20, 25, 50, 100 ms
    — so under concurrent writes (API threads ingesting, the group-commit thread, the relayer)
    a writer often sleeps far longer than the lock was held: with four clients posting Bundles
    the insert of fifty rows took 20 ms at the median and 135 ms at p90 for ~3 ms of work. A
    writer first takes its turn here, on the first statement that writes (where SQLite takes
    its lock; the implicit BEGIN comes with it), until its commit or rollback. Other processes
    of the gateway still meet SQLite's own waiting. A turn not granted within the busy timeout
    is not waited for further: the statement then meets SQLite's lock as before.
    """

    def __init__(self, timeout_s: float) -> None:
        self._lock = threading.Lock()
        self._timeout_s = timeout_s
        turns = self

        class TurnTakingConnection(sqlite3.Connection):
            holds_turn = False

            def commit(self) -> None:
                try:
                    super().commit()
                finally:
                    turns.end(self)

            def rollback(self) -> None:
                try:
                    super().rollback()
                finally:
                    turns.end(self)

            def close(self) -> None:
                try:
                    super().close()
                finally:
                    turns.end(self)

        self.connection_class = TurnTakingConnection

    def before_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if _WRITE.match(statement):
            self.take(cursor.connection)

    def take(self, dbapi: Any) -> None:
        """The turn for this connection until it commits or rolls back (a no-op if it has it)."""
        if not dbapi.holds_turn:
            dbapi.holds_turn = self._lock.acquire(timeout=self._timeout_s)

    def end(self, dbapi: Any) -> None:
        if dbapi.holds_turn:
            dbapi.holds_turn = False
            self._lock.release()


def take_write_turn(engine: Engine, dbapi_connection: Any) -> None:
    """Before a write straight on the driver's connection (no SQLAlchemy events fire there):
    take this process's turn at SQLite's write lock, as every other writer does."""
    turns = _TURNS.get(engine)
    if turns is not None:
        turns.take(dbapi_connection)


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout_s: float) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers and the one writer proceed together; secure_delete zeroes freed
    # cells and pages, so erased key material does not linger in free pages.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    cursor.close()


class Database:
    """An engine and its session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = threading.local()
        self._all_readers: list[Connection] = []  # to close them all on dispose
        self._async: tuple[asyncio.AbstractEventLoop, psycopg.AsyncConnection[tuple[Any, ...]]] | None = None
        self._compiled: dict[int, str] = {}  # statement -> its SQL for the driver (statements are kept)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error."""
        try:
            with self._sessions() as session, session.begin():
                yield session
        except OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {exc.orig.__class__.__name__}") from None
        except IntegrityError:
            raise StoreConflict("a concurrent change got there first") from None

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for single-statement reads on the hot path: this thread's own, kept
        open, in autocommit (no ORM session, no pool checkout, no BEGIN and ROLLBACK around a
        SELECT: on PostgreSQL those were two of a read's three round trips). One that fails
        is dropped; the next call opens another."""
        conn: Connection | None = getattr(self._readers, "conn", None)
        try:
            if conn is None:
                conn = self._readers.conn = self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
                self._all_readers.append(conn)
            yield conn
        except OperationalError as exc:
            self._drop_reader()
            raise StoreUnavailable(f"database unavailable: {exc.orig.__class__.__name__}") from None
        except DBAPIError:
            self._drop_reader()
            raise

    async def fetch_one(
        self, statement: Select[*tuple[Any, ...]], params: dict[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row of a single-statement read, from an event loop. PostgreSQL: on an
        asynchronous connection of the loop's own, so the loop serves other requests during
        the round trip instead of blocking in the driver. SQLite: in-process and quick, run
        directly (connection())."""
        if self.is_sqlite:
            with self.connection() as conn:
                row = conn.execute(statement, params).first()
            return None if row is None else tuple(row)
        sql = self._compiled.get(id(statement))
        if sql is None:
            sql = self._compiled[id(statement)] = str(statement.compile(dialect=self.engine.dialect))
        try:
            reader = await self._async_reader()
            cursor = await reader.execute(sql, params)
            found: tuple[Any, ...] | None = await cursor.fetchone()
            return found
        except psycopg.Error as exc:
            await self._drop_async_reader()
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from None

    async def _async_reader(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop or self._async[1].closed:
            conninfo = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            self._async = (loop, conn)
        return self._async[1]

    async def _drop_async_reader(self) -> None:
        if self._async is not None:
            _, conn = self._async
            self._async = None
            with suppress(Exception):  # a broken connection may fail to close
                await conn.close()

    async def aclose(self) -> None:
        """Close what belongs to the running event loop (its asynchronous reader)."""
        await self._drop_async_reader()

    def _drop_reader(self) -> None:
        conn = getattr(self._readers, "conn", None)
        self._readers.conn = None
        if conn is not None:
            with suppress(ValueError):
                self._all_readers.remove(conn)
            with suppress(Exception):  # a broken connection may fail to close
                conn.invalidate()
                conn.close()

    def lock(self, session: Session, name: str) -> None:
        """Serialise a critical section with every process of this gateway until `session`
        ends: a PostgreSQL transaction-level advisory lock on `name`; on SQLite, the
        database's one write lock (a write that changes nothing takes it), so call this first
        in the session, before it reads anything."""
        if self.is_sqlite:
            session.execute(text("UPDATE gateway_state SET name = name WHERE 1 = 0"))
        else:
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except OperationalError:
            return False

    def reclaim(self) -> None:
        """Push freed and rewritten pages out of the journals: SQLite checkpoints its WAL and
        truncates it; PostgreSQL vacuums the records table. (What stays behind in either is
        sealed under keys that rotation destroyed.)"""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM records")

    def dispose(self) -> None:
        for conn in self._all_readers:
            with suppress(Exception):
                conn.close()
        self._all_readers.clear()
        self.engine.dispose()
