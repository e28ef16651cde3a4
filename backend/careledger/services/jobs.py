"""Queue a patient-signed message for the relayer and, if asked, wait for its outcome."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from careledger import errors
from careledger.services.gateway import Gateway
from careledger.services.requests import Principal
from careledger.store.models import ChainJobRow
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


def queue_job(gw: Gateway, kind: str, payload: dict[str, Any]) -> int:
    with gw.db.session() as s:
        row = ChainJobs(s).add(
            ChainJobRow(
                kind=kind,
                payload=json.dumps(payload),
                status="pending",
                created_at=datetime.fromtimestamp(gw.clock(), UTC),
            )
        )
        return row.id


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
        return JobStatus(
            row.id, row.kind, row.status, json.loads(row.result) if row.result else None, row.error
        )


def wait_for_job(gw: Gateway, job_id: int, timeout: float) -> JobStatus:
    """Poll until the job is done or failed, or `timeout` passes (then it is still pending)."""
    deadline = time.monotonic() + timeout
    while True:
        status = job_status(gw, job_id)
        if status.finished or time.monotonic() >= deadline:
            return status
        time.sleep(0.02)
