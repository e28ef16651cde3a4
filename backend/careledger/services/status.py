"""Readiness: is the chain reachable, the database answering, the relayer keeping up?"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from careledger import errors
from careledger.services.gateway import Gateway
from careledger.store.repositories import ChainJobs, Disclosures, Records


def readiness(gw: Gateway) -> dict[str, Any]:
    state: dict[str, Any] = {"database": "ok", "chain": "ok", "chainHead": None, "queues": {}}
    try:
        state["chainHead"] = gw.ledger.block_number()
    except errors.ChainUnavailable as exc:
        state["chain"] = str(exc)
    try:
        with gw.db.session() as s:
            records = Records(s).count_by_status()
            disclosures = Disclosures(s).count_by_status()
            oldest = Records(s).oldest_pending_created_at()
            state["queues"] = {
                "records_pending": records.get("pending", 0),
                "disclosures_pending": disclosures.get("pending", 0) + disclosures.get("sending", 0),
                "relay_jobs_pending": ChainJobs(s).count_pending(),
            }
            if oldest is not None:
                state["anchorLagSeconds"] = (datetime.fromtimestamp(gw.clock(), UTC) - oldest).total_seconds()
    except errors.StoreUnavailable as exc:
        state["database"] = str(exc)
    relayer = gw.relayer
    state["relayer"] = {
        "enabled": relayer is not None,
        "holdsLease": bool(relayer and relayer.stats.holds_lease),
        "lastError": relayer.stats.last_error if relayer else None,
    }
    state["ready"] = state["database"] == "ok" and state["chain"] == "ok"
    return state
