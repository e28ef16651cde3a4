"""The timed scenarios (ingest, consent, read) and their naive baselines, on one Cell.

Each function returns a dict of figures; sizes come from a Sizes object so that the smoke
test runs the very same code with tiny numbers. Throughputs count only completed work:
records anchored, grants mined, reads whose disclosures are mined.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coincurve import PrivateKey
from eth_account import Account
from eth_utils.crypto import keccak
from sqlalchemy import func, select

from bench.harness import (
    CLINIC_KEY,
    FHIR_JSON,
    INSURER_KEY,
    Cell,
    FastSigner,
    RssSampler,
    bundle,
    observation,
    percentile,
    reference_of,
    wait_for,
)
from bench.loadgen import Prepared, closed_loop, open_loop
from careledger.chain.clients import Disclosure
from careledger.chain.eip712 import Grant
from careledger.codes import Category, Purpose, mask
from careledger.store.models import ChainTxRow, DisclosureRow, RecordRow

READ_CATEGORY, READ_PURPOSE = Category.OBSERVATIONS, Purpose.HPAYMT


@dataclass(frozen=True)
class Sizes:
    patients: int = 8
    bundle_size: int = 50
    bundle_clients: int = 4
    bundle_seconds: float = 6.0
    bundles_max: int = 600
    single_clients: int = 8
    single_seconds: float = 2.0
    # Many patients at once: a closed loop's rate is clients / latency, and a grant waits for
    # its block (a second with --block-time 1), so fewer clients would measure the loop.
    grants: int = 3000
    grant_clients: int = 400
    grant_seconds: float = 8.0
    read_clients: int = 32
    read_seconds: float = 5.0
    read_rate: float = 400.0
    open_seconds: float = 8.0  # 3,200 requests: the p99 is not one slow request's
    baseline_seconds: float = 2.0
    anchor_timeout: float = 30.0


SMOKE = Sizes(
    patients=2,
    bundle_size=5,
    bundle_clients=2,
    bundle_seconds=0.5,
    bundles_max=4,
    single_clients=2,
    single_seconds=0.3,
    grants=6,
    grant_clients=6,
    grant_seconds=10.0,
    read_clients=2,
    read_seconds=0.5,
    read_rate=20.0,
    open_seconds=0.5,
    baseline_seconds=0.3,
    anchor_timeout=30.0,
)


def _ts(value: datetime | None) -> float:
    return 0.0 if value is None else value.timestamp()


# --------------------------------------------------------------------------- ingest


def ingest(c: Cell, sizes: Sizes, tag: str) -> dict[str, Any]:
    """Bundles of `bundle_size` and single resources, each counted until anchored."""
    staff = FastSigner(CLINIC_KEY)
    # warm-up: one bundle and one single per patient, not counted
    warm = [_bundle_request(c, staff, p, f"{tag}w{n}", 2) for n, p in enumerate(c.patients)]
    closed_loop(warm, 2, 30)
    out = {
        "bundles": _ingest_phase(c, sizes, tag + "b", sizes.bundle_size, sizes.bundle_clients,
                                 sizes.bundle_seconds, sizes.bundles_max),
        "singles": _ingest_phase(c, sizes, tag + "s", 1, sizes.single_clients, sizes.single_seconds,
                                 int(sizes.single_seconds * 1500)),
    }  # fmt: skip
    return out


def _bundle_request(c: Cell, signer: FastSigner, patient: Any, prefix: str, size: int) -> Prepared:
    reference = reference_of(c, patient)
    if size == 1:
        document = observation(reference, prefix)
    else:
        document = bundle(c.url, reference, [f"{prefix}-{i}" for i in range(size)])
    return signer.prepare("POST", f"{c.url}/fhir", json.dumps(document).encode(), FHIR_JSON)


def _ingest_phase(
    c: Cell, sizes: Sizes, tag: str, size: int, clients: int, seconds: float, count: int
) -> dict[str, Any]:
    staff = FastSigner(CLINIC_KEY)
    requests = [
        _bundle_request(c, staff, c.patients[n % len(c.patients)], f"{tag}{n}", size) for n in range(count)
    ]
    outcomes = closed_loop(requests, clients, seconds)
    accepted = [o for o in outcomes if o.status in (200, 201)]
    t0 = min(o.started for o in outcomes)
    load_end = max(o.finished for o in outcomes)
    expected = len(accepted) * size

    def rows() -> list[tuple[str, datetime, datetime | None]]:
        with c.db.session() as s:
            return list(
                s.execute(
                    select(RecordRow.status, RecordRow.created_at, RecordRow.anchored_at).where(
                        RecordRow.resource_id.like(f"{tag}%")
                    )
                ).tuples()
            )

    wait_for(lambda: sum(1 for r in rows() if r[0] == "anchored") >= expected, sizes.anchor_timeout, 0.2)
    found = rows()
    anchored = [r for r in found if r[0] == "anchored" and r[2] is not None]
    to_anchor = [_ts(r[2]) - _ts(r[1]) for r in anchored]
    end = max((_ts(r[2]) for r in anchored), default=load_end)
    return {
        "records_per_s": round(len(anchored) / max(end - t0, 1e-9), 1),
        "accepted_per_s": round(expected / max(load_end - t0, 1e-9), 1),
        "records_accepted": expected,
        "records_anchored": len(anchored),
        "requests": len(outcomes),
        "refused": len(outcomes) - len(accepted),
        "clients": clients,
        "load_s": round(load_end - t0, 2),
        "until_anchored_s": round(end - t0, 2),
        "p50_to_anchor_s": round(percentile(to_anchor, 50), 3),
        "p99_to_anchor_s": round(percentile(to_anchor, 99), 3),
        "max_to_anchor_s": round(max(to_anchor, default=0.0), 3),
        "http_p50_ms": round(percentile([o.latency for o in accepted], 50) * 1000, 1),
        "http_p99_ms": round(percentile([o.latency for o in accepted], 99) * 1000, 1),
    }


def ingest_baseline(c: Cell, sizes: Sizes) -> dict[str, Any]:
    """The naive way: web3.py transact() + wait_for_transaction_receipt, one record per transaction."""
    w3 = c.w3
    registry = c.devnet.ledger.records.contract
    patient = c.patients[0].address
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < sizes.baseline_seconds or done == 0:
        record = (int(Category.OBSERVATIONS), os.urandom(32), bytes(32))
        tx = registry.functions.anchor([(patient, [record])]).transact({"from": c.clinic.address})
        receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=30, poll_latency=0.05)
        if receipt["status"] != 1:
            raise RuntimeError("baseline anchor reverted")
        done += 1
    elapsed = time.perf_counter() - t0
    return {"records_per_s": round(done / elapsed, 1), "records": done, "seconds": round(elapsed, 2)}


# --------------------------------------------------------------------------- consent


def _grant_for(c: Cell, patient: Any, nonce: int = 1) -> Grant:
    now = int(time.time())
    return Grant(
        patient.address,
        c.insurer.address,
        mask([READ_CATEGORY]),
        mask([READ_PURPOSE]),
        now - 60,
        now + 86400,
        nonce,
        now + 600,
    )


def _grant_request(c: Cell, patient: Any, grant: Grant) -> Prepared:
    signature = grant.sign(patient.key, c.devnet.ledger.consent_domain)
    body = json.dumps(
        {
            "message": {
                "patient": grant.patient,
                "grantee": grant.grantee,
                "categories": grant.categories,
                "purposes": grant.purposes,
                "validFrom": grant.valid_from,
                "validUntil": grant.valid_until,
                "nonce": grant.nonce,
                "deadline": grant.deadline,
            },
            "signature": "0x" + signature.hex(),
        }
    ).encode()
    return FastSigner(bytes(patient.key)).prepare(
        "POST", f"{c.url}/consents/grants", body, "application/json"
    )


def grant_readers(c: Cell) -> None:
    """Setup for `read`: every enrolled patient lets the insurer see observations for payment."""
    requests = [_grant_request(c, p, _grant_for(c, p, 7)) for p in c.patients]
    outcomes = closed_loop(requests, len(requests), 60, keep_body=True)
    bad = [o for o in outcomes if o.status != 200 or json.loads(o.body)["status"] != "done"]
    if bad:
        raise RuntimeError(f"reader grants failed: {bad[0].status} {bad[0].body[:300]!r}")


def consent(c: Cell, sizes: Sizes) -> dict[str, Any]:
    """Patient-signed grants relayed by the gateway, counted when mined."""
    people = [Account.create() for _ in range(sizes.grants + 4)]
    requests = [_grant_request(c, p, _grant_for(c, p)) for p in people]
    closed_loop(requests[:4], 4, 30)  # warm-up
    outcomes = closed_loop(requests[4:], sizes.grant_clients, sizes.grant_seconds, keep_body=True)
    done = [o for o in outcomes if o.status == 200 and json.loads(o.body).get("status") == "done"]
    t0 = min(o.started for o in outcomes)
    end = max((o.finished for o in done), default=t0 + 1e-9)
    return {
        "grants_per_s": round(len(done) / max(end - t0, 1e-9), 1),
        "grants_mined": len(done),
        "submitted": len(outcomes),
        "clients": sizes.grant_clients,
        "seconds": round(end - t0, 2),
        "p50_ms": round(percentile([o.latency for o in done], 50) * 1000, 1),
        "p99_ms": round(percentile([o.latency for o in done], 99) * 1000, 1),
    }


def consent_baseline(c: Cell, sizes: Sizes) -> dict[str, Any]:
    """grantBySig one at a time: web3.py transact() + wait_for_transaction_receipt."""
    registry = c.devnet.ledger.consents.contract
    domain = c.devnet.ledger.consent_domain
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < sizes.baseline_seconds or done == 0:
        patient = Account.create()
        grant = _grant_for(c, patient)
        tx = registry.functions.grantBySig(grant.as_tuple(), grant.sign(patient.key, domain)).transact(
            {"from": c.clinic.address}
        )
        if c.w3.eth.wait_for_transaction_receipt(tx, timeout=30, poll_latency=0.05)["status"] != 1:
            raise RuntimeError("baseline grant reverted")
        done += 1
    elapsed = time.perf_counter() - t0
    return {"grants_per_s": round(done / elapsed, 1), "grants": done, "seconds": round(elapsed, 2)}


# --------------------------------------------------------------------------- read


def _readable(c: Cell) -> list[bytes]:
    with c.db.session() as s:
        return list(
            s.scalars(
                select(RecordRow.record_id).where(
                    RecordRow.status == "anchored", RecordRow.resource_type == "Observation"
                )
            )
        )


def _read_requests(c: Cell, record_ids: list[bytes], count: int) -> list[Prepared]:
    reader = FastSigner(INSURER_KEY)
    return [
        reader.prepare("GET", f"{c.url}/records/0x{record_ids[n % len(record_ids)].hex()}?purpose=HPAYMT")
        for n in range(count)
    ]


def read(c: Cell, sizes: Sizes) -> dict[str, Any]:
    """Authorized reads: closed loop for throughput, then an open loop at `read_rate` for latency."""
    record_ids = _readable(c)
    if not record_ids:
        raise RuntimeError("nothing to read: ingest first")
    warm = closed_loop(_read_requests(c, record_ids, 50), 4, 30)
    if not any(o.status == 200 for o in warm):
        raise RuntimeError(f"warm-up reads refused: {sorted({o.status for o in warm})}")
    with RssSampler(c) as rss:
        started = _max_disclosure_id(c)
        outcomes = closed_loop(
            _read_requests(c, record_ids, int(sizes.read_seconds * 2500)),
            sizes.read_clients,
            sizes.read_seconds,
        )
        ok = [o for o in outcomes if o.status == 200]
        t0, load_end = min(o.started for o in outcomes), max(o.finished for o in outcomes)
        logged, end = _logged_since(c, started, len(ok), grace=3.0)
        closed = {
            "reads_per_s": round(logged / max(end - t0, 1e-9), 1) if logged else 0.0,
            "answered_per_s": round(len(ok) / max(load_end - t0, 1e-9), 1),
            "answered": len(ok),
            "refused": len(outcomes) - len(ok),
            "logged": logged,
            "clients": sizes.read_clients,
            "seconds": round(end - t0, 2),
            "p50_ms": round(percentile([o.latency for o in ok], 50) * 1000, 2),
            "p99_ms": round(percentile([o.latency for o in ok], 99) * 1000, 2),
        }
        # first at half the throughput just measured (the latency when the gateway keeps up),
        # then at the fixed rate: abandoned requests of an overload would queue ahead of it
        half_rate = max(5.0, round(closed["reads_per_s"] / 2, 1))
        half = open_loop(_read_requests(c, record_ids, int(half_rate * sizes.open_seconds)), half_rate)
        half_ok = [o for o in half if o.status == 200]
        at_half = {
            "rate": half_rate,
            "sent": len(half),
            "answered": len(half_ok),
            "p50_ms": round(percentile([o.latency for o in half], 50) * 1000, 2),
            "p99_ms": round(percentile([o.latency for o in half], 99) * 1000, 2),
        }
        started = _max_disclosure_id(c)
        planned = _read_requests(c, record_ids, int(sizes.read_rate * sizes.open_seconds))
        outcomes = open_loop(planned, sizes.read_rate)
        ok = [o for o in outcomes if o.status == 200]
        logged, _ = _logged_since(c, started, len(ok), grace=3.0)
        opened = {
            "rate": sizes.read_rate,
            "sent": len(outcomes),
            "answered": len(ok),
            "failed_or_timed_out": len(outcomes) - len(ok),
            "logged": logged,
            # every request counts, a failed one with its time to failure (a lower bound)
            "p50_ms": round(percentile([o.latency for o in outcomes], 50) * 1000, 2),
            "p99_ms": round(percentile([o.latency for o in outcomes], 99) * 1000, 2),
            "max_ms": round(max((o.latency for o in outcomes), default=0.0) * 1000, 2),
        }
    return {"closed": closed, "open": opened, "open_half": at_half, "gateway_peak_rss_mb": rss.peak_mb,
            "gateway_processes": len(c.gateway_processes())}  # fmt: skip


def _max_disclosure_id(c: Cell) -> int:
    with c.db.session() as s:
        return int(s.scalar(select(func.max(DisclosureRow.id))) or 0)


def _logged_since(c: Cell, after_id: int, expected: int, grace: float) -> tuple[int, float]:
    """How many disclosures after row `after_id` are mined (waiting up to `grace` s for
    `expected`), and when the last of them was mined."""

    def count() -> int:
        with c.db.session() as s:
            return int(
                s.scalar(
                    select(func.count()).where(DisclosureRow.id > after_id, DisclosureRow.status == "logged")
                )
                or 0
            )

    wait_for(lambda: count() >= expected, grace, 0.1)
    with c.db.session() as s:
        last = s.scalar(
            select(func.max(ChainTxRow.mined_at))
            .join(DisclosureRow, DisclosureRow.tx_id == ChainTxRow.id)
            .where(DisclosureRow.id > after_id, DisclosureRow.status == "logged")
        )
    return count(), _ts(last)


def read_baseline(c: Cell, sizes: Sizes) -> dict[str, Any]:
    """The consent check and the disclosure log as one synchronous transaction per read
    (isPermitted, then AccessLog.log of one entry through web3.py transact() + wait)."""
    ledger = c.devnet.ledger
    record_ids = _readable(c)
    with c.db.session() as s:
        rows = {
            r.record_id: r
            for r in s.scalars(select(RecordRow).where(RecordRow.record_id.in_(record_ids[:50])))
        }
    from careledger.store.models import PatientRow

    with c.db.session() as s:
        patients = {p.id: p.address for p in s.scalars(select(PatientRow))}
    key = PrivateKey(INSURER_KEY)
    access = ledger.access.contract
    consents = ledger.consents.contract
    done, t0 = 0, time.perf_counter()
    ids = list(rows)
    while time.perf_counter() - t0 < sizes.baseline_seconds or done == 0:
        row = rows[ids[done % len(ids)]]
        permitted, consent_id = consents.functions.isPermitted(
            patients[row.patient_id], c.insurer.address, int(READ_CATEGORY), int(READ_PURPOSE)
        ).call()
        if not permitted:
            raise RuntimeError("baseline read not permitted")
        request_hash = keccak(os.urandom(32))
        rs = key.sign_recoverable(request_hash, hasher=None)
        entry = Disclosure(
            row.record_id, c.insurer.address, int(READ_PURPOSE), False, c.w3.eth.block_number,
            bytes(consent_id), request_hash, rs[:64] + bytes([27 + rs[64]]),
        )  # fmt: skip
        tx = access.functions.log([entry.as_tuple()]).transact({"from": c.clinic.address})
        if c.w3.eth.wait_for_transaction_receipt(tx, timeout=30, poll_latency=0.05)["status"] != 1:
            raise RuntimeError("baseline log reverted")
        done += 1
    elapsed = time.perf_counter() - t0
    return {"reads_per_s": round(done / elapsed, 1), "reads": done, "seconds": round(elapsed, 2)}
