"""Queue a patient-signed message for the relayer and, if asked, wait for its outcome."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from careledger import errors
from careledger.services.gateway import Gateway
from careledger.services.requests import Principal
from careledger.store.repositories import ChainJobs


@dataclass(frozen=True)
class JobStatus:
    job_id: int
    kind: str
    status: str  # pending | sent | done | failed
    result: dict[str, Any] | None
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


def _job_values(gw: Gateway, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "payload": json.dumps(payload),
        "status": "pending",
        "tx_id": None,
        "result": None,
        "error": None,
        "created_at": datetime.fromtimestamp(gw.clock(), UTC),
        "done_at": None,
    }


def queue_job(gw: Gateway, kind: str, payload: dict[str, Any]) -> int:
    """Store a relay job for the relayer (committed on return); its id."""
    return gw.commits.queue_job(_job_values(gw, kind, payload)).result()


async def queue_job_async(gw: Gateway, kind: str, payload: dict[str, Any]) -> int:
    """queue_job for an event loop: the commit (shared with concurrent requests') is awaited."""
    return await asyncio.wrap_future(gw.commits.queue_job(_job_values(gw, kind, payload)))


def job_status(gw: Gateway, job_id: int, *, asked_by: Principal | None = None) -> JobStatus:
    """A job's state; `asked_by`, if given, must be the job's patient or this custodian's staff."""
    if not 1 <= job_id < 2**63:
        raise errors.NotFound(f"no relay job {job_id}")
    with gw.db.session() as s:
        row = ChainJobs(s).by_id(job_id)
        if row is None:
            raise errors.NotFound(f"no relay job {job_id}")
        if asked_by is not None and asked_by.member != gw.custodian:
            patient = json.loads(row.payload)["message"]["patient"]
            if asked_by.keyid.lower() != str(patient).lower():
                raise errors.NotFound(f"no relay job {job_id}")  # not theirs: as if it did not exist
        status = JobStatus(
            row.id, row.kind, row.status, json.loads(row.result) if row.result else None, row.error
        )
    if status.result and isinstance(status.result.get("blockNumber"), int):
        # Read your writes: once a relayed message is reported mined, this process checks
        # consents and memberships at that block or later, however old a head may be.
        gw.ledger.watcher.reached(status.result["blockNumber"])
    return status


def wait_for_job(gw: Gateway, job_id: int, timeout: float) -> JobStatus:
    """Wait until the job is done or failed, or `timeout` passes (then it is still pending)."""
    done = threading.Event()
    _waiter(gw).watch(job_id, done.set)
    try:
        done.wait(timeout)
    finally:
        _waiter(gw).forget(job_id, done.set)
    return job_status(gw, job_id)


async def wait_for_job_async(gw: Gateway, job_id: int, timeout: float) -> JobStatus:
    """wait_for_job for an event loop: no thread is held while the job waits for the chain."""
    loop = asyncio.get_running_loop()
    finished = loop.create_future()

    def settle() -> None:
        if not finished.done():
            finished.set_result(None)

    def wake() -> None:
        loop.call_soon_threadsafe(settle)

    _waiter(gw).watch(job_id, wake)
    try:
        await asyncio.wait_for(asyncio.shield(finished), timeout)
    except TimeoutError:
        pass
    finally:
        _waiter(gw).forget(job_id, wake)
    return job_status(gw, job_id)


class _JobWaiter:
    """Requests waiting for their relay jobs, woken by one poller thread per gateway process
    (one query every POLL_S for all of them, instead of one per request)."""

    POLL_S = 0.02
    IDLE_EXIT_S = 2.0

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._lock = threading.Lock()
        self._waiting: dict[int, list[Callable[[], None]]] = {}
        self._thread: threading.Thread | None = None

    def watch(self, job_id: int, wake: Callable[[], None]) -> None:
        with self._lock:
            self._waiting.setdefault(job_id, []).append(wake)
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll, name="job-waiter", daemon=True)
                self._thread.start()

    def forget(self, job_id: int, wake: Callable[[], None]) -> None:
        with self._lock:
            waiting = self._waiting.get(job_id, [])
            if wake in waiting:
                waiting.remove(wake)
            if not waiting:
                self._waiting.pop(job_id, None)

    def _poll(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._lock:
                ids = list(self._waiting)
                if not ids and time.monotonic() - idle_since > self.IDLE_EXIT_S:
                    self._thread = None
                    return
            if ids:
                idle_since = time.monotonic()
                try:
                    with self.gw.db.session() as s:
                        finished = ChainJobs(s).finished_among(ids)
                except Exception:  # noqa: BLE001 - the store is away: waiters time out, answer from job_status
                    finished = []
                with self._lock:
                    wakes = [w for job_id in finished for w in self._waiting.get(job_id, [])]
                for wake in wakes:
                    with contextlib.suppress(RuntimeError):  # its event loop is gone
                        wake()
            time.sleep(self.POLL_S)


_WAITERS: dict[int, _JobWaiter] = {}
_WAITERS_LOCK = threading.Lock()


def _waiter(gw: Gateway) -> _JobWaiter:
    with _WAITERS_LOCK:
        waiter = _WAITERS.get(id(gw))
        if waiter is None or waiter.gw is not gw:
            waiter = _WAITERS[id(gw)] = _JobWaiter(gw)
        return waiter
