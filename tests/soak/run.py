"""The soak: clinics ingest and insurers and researchers read while patients grant and revoke,
for minutes, on loopback; then everything is checked against the chain.

    scripts/soak [--minutes 5] [--database sqlite|postgresql] [--block-time 1] [--out bench/results/soak.json]

Bounded in time and in requests (--max-requests). At the end, after the gateways have drained
their queues, it checks — and exits 1 if any check fails:
- the audit replay of the whole chain reports no finding;
- every record a gateway accepted is anchored exactly once (RecordAnchored events counted);
- every read that succeeded is logged on chain exactly once (by its signature) and none was
  checked at or after its consent's revocation block; no read sent after the patient saw the
  revocation mined succeeded;
- the gateways' resident memory stayed flat: the median of the last fifth of the samples is
  within 25 % (and 40 MB) of the median of the second fifth (the first is warm-up).
Figures go to --out (JSON) and are summarised in docs/security.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from eth_account import Account
from eth_account.signers.local import LocalAccount

from careledger.audit.events import Decoder, LogReader
from careledger.audit.replay import replay
from careledger.auth.signatures import sign_request
from careledger.chain.devnet import dev_key, start_devnet
from careledger.chain.eip712 import Revocation
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose
from careledger.errors import CareLedgerError
from tests.backend.databases import postgres_database, sqlite_url
from tests.backend.gateways import (
    GatewayProcess,
    consent_grant,
    enroll,
    observation,
    relayer_key_for,
    running_gateway,
    wait_until,
)
from tests.backend.support import Cluster, build_cluster

ROOT = Path(__file__).resolve().parents[2]
READERS = {"insurer": Purpose.HPAYMT, "researcher": Purpose.HRESCH}


@dataclass
class Tally:
    """What the load did, as the clients saw it (shared by the worker threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: list[str] = field(default_factory=list)  # record ids the gateways accepted
    reads_ok: list[dict[str, Any]] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    grants: int = 0
    revocations: list[tuple[str, float]] = field(default_factory=list)  # consent id, seen mined at
    requests: int = 0

    def count(self) -> int:
        with self.lock:
            self.requests += 1
            return self.requests


@dataclass
class Patient:
    account: LocalAccount
    gateway: str
    custodian: str
    records: list[str] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--block-time", type=float, default=1.0, help="anvil's seconds per block (0: a block per transaction)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="careledger-soak-")))
        devnet = start_devnet(block_time=args.block_time or None)
        stack.callback(devnet.anvil.stop)
        cluster = build_cluster(devnet)
        gateways = [
            stack.enter_context(_gateway(cluster, cluster.clinic, 15, "a", work, args.database)),
            stack.enter_context(_gateway(cluster, cluster.clinic_b, 16, "b", work, args.database)),
        ]
        result = soak(cluster, gateways, args.minutes * 60, args.max_requests, args.patients)
    result = {"database": args.database, "block_time_s": args.block_time or "automine", **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss_samples_mb"}, indent=2))
    failed = [name for name, ok in result["checks"].items() if not ok]
    print(f"soak {'FAILED: ' + ', '.join(failed) if failed else 'passed'}; figures in {args.out}")
    return 1 if failed else 0


@contextmanager
def _gateway(
    cluster: Cluster, admin: Any, relayer_index: int, name: str, work: Path, database: str
) -> Iterator[GatewayProcess]:
    from careledger.store.migrate import upgrade

    with ExitStack() as stack:
        directory = work / name
        directory.mkdir()
        url = sqlite_url(directory) if database == "sqlite" else stack.enter_context(postgres_database())
        upgrade(url)
        key = relayer_key_for(cluster.devnet, admin, relayer_index)
        yield stack.enter_context(running_gateway(cluster.devnet, admin, key, url, directory))


def soak(
    cluster: Cluster, gateways: list[GatewayProcess], seconds: float, max_requests: int, n_patients: int
) -> dict[str, Any]:
    ledger = cluster.ledger
    staff = {g.url: dev_key(10 if i == 0 else 11) for i, g in enumerate(gateways)}
    custodian = {gateways[0].url: cluster.clinic.address, gateways[1].url: cluster.clinic_b.address}
    patients = []
    for i in range(n_patients):
        url = gateways[i % 2].url
        patient = Patient(Account.create(), url, custodian[url])
        enroll(cluster, url, patient.account, f"Patient/p{i}", staff_key=staff[url])
        patients.append(patient)
    readers = {
        "insurer": CareLedgerClient(dev_key(12), ledger),
        "researcher": CareLedgerClient(dev_key(13), ledger),
    }
    grantees = {"insurer": cluster.insurer.address, "researcher": cluster.researcher.address}
    tally = Tally()
    stop = threading.Event()
    deadline = time.monotonic() + seconds
    rss: list[float] = []

    def running() -> bool:
        return not stop.is_set() and time.monotonic() < deadline and tally.count() <= max_requests

    def ingest(url: str) -> None:
        clinic = CareLedgerClient(staff[url], ledger)
        mine = [p for p in patients if p.gateway == url]
        n = 0
        while running():
            patient = random.choice(mine)
            n += 1
            resource = observation(f"Patient/p{patients.index(patient)}")
            resource["id"] = f"soak-{n}"
            try:
                answer = clinic.post_fhir(url, resource)
            except CareLedgerError as exc:
                _failed(tally, f"ingest: {exc}")
                continue
            record = answer["issue"][0]["diagnostics"].split("record ")[1].split(" ")[0]
            with tally.lock:
                tally.accepted.append(record)
                patient.records.append(record)

    def read(who: str) -> None:
        client, purpose = readers[who], READERS[who]
        while running():
            patient = random.choice(patients)
            with tally.lock:
                candidates = list(patient.records)
            if not candidates:
                time.sleep(0.05)
                continue
            record = random.choice(candidates)
            target = f"{patient.gateway}/records/{record}?purpose={purpose.name}"
            headers = sign_request(dev_key(12 if who == "insurer" else 13), "GET", target)
            sent = time.time()
            try:
                response = client._http.get(target, headers=headers)
            except httpx.HTTPError as exc:
                _failed(tally, f"read: {exc}")
                continue
            if response.status_code == 200:
                signature = base64.b64decode(headers["signature"].split(":")[1])
                with tally.lock:
                    tally.reads_ok.append(
                        {
                            "record": record,
                            "consent": response.headers["careledger-consent-id"],
                            "checkedBlock": int(response.headers["careledger-checked-block"]),
                            "signature": "0x" + signature.hex(),
                            "sent": sent,
                        }
                    )
            elif response.status_code in (403, 409):  # no consent (yet, or any more); not anchored yet
                with tally.lock:
                    tally.refused[response.status_code] += 1
            else:
                _failed(tally, f"read answered {response.status_code}: {response.text[:200]}")

    def consents() -> None:
        nonce = 0
        active: list[tuple[Patient, str]] = []
        while running():
            patient = random.choice(patients)
            me = CareLedgerClient(patient.account.key, ledger)
            try:
                if active and (len(active) > len(patients) or random.random() < 0.4):
                    owner, consent = active.pop(random.randrange(len(active)))
                    owner_client = CareLedgerClient(owner.account.key, ledger)
                    nonce += 1
                    revocation = Revocation(
                        owner.account.address, bytes.fromhex(consent[2:]), nonce, int(time.time()) + 600
                    )
                    job = owner_client.revoke(owner.gateway, revocation)
                    if job["status"] == "done":
                        with tally.lock:
                            tally.revocations.append((consent, time.time()))
                else:
                    who = random.choice(list(grantees))
                    nonce += 1
                    grant = consent_grant(
                        patient.account, grantees[who], Category.OBSERVATIONS, READERS[who], nonce
                    )
                    job = me.grant(patient.gateway, grant)
                    if job["status"] == "done":
                        active.append((patient, job["result"]["consentId"]))
                        with tally.lock:
                            tally.grants += 1
            except CareLedgerError as exc:
                _failed(tally, f"consent: {exc}")
            time.sleep(0.05)

    def sample() -> None:
        while not stop.wait(2.0):
            rss.append(sum(_rss(g.process.pid) for g in gateways) / 2**20)

    workers = [threading.Thread(target=ingest, args=(g.url,)) for g in gateways]
    workers += [threading.Thread(target=read, args=(who,)) for who in readers for _ in range(2)]
    workers += [threading.Thread(target=consents)]
    sampler = threading.Thread(target=sample)
    started = time.monotonic()
    for t in [*workers, sampler]:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.monotonic() - started
    _drain(gateways)
    stop.set()
    sampler.join()
    return _check(cluster, tally, rss, elapsed) | {"stores": [_store_facts(g) for g in gateways]}


def _store_facts(gateway: GatewayProcess) -> dict[str, Any]:
    """What a gateway's own database says: rows per status, and any disclosure stored twice."""
    url = gateway.env["CARELEDGER_DATABASE_URL"]
    queries = {
        "disclosures": "SELECT status, COUNT(*) FROM disclosures GROUP BY status",
        "records": "SELECT status, COUNT(*) FROM records GROUP BY status",
        "chain_txs": "SELECT purpose || ':' || status, COUNT(*) FROM chain_txs GROUP BY purpose, status",
        "disclosures_stored_twice": "SELECT COUNT(*), 0 FROM (SELECT request_hash FROM disclosures "
        "GROUP BY request_hash HAVING COUNT(*) > 1) AS twice",
    }
    if url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return {name: dict(db.execute(q).fetchall()) for name, q in queries.items()}
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as db:
        return {name: {str(k): v for k, v in db.execute(q).fetchall()} for name, q in queries.items()}


def _failed(tally: Tally, what: str) -> None:
    with tally.lock:
        tally.errors.append(what)


def _rss(pid: int) -> int:
    try:
        process = psutil.Process(pid)
        return int(process.memory_info().rss + sum(c.memory_info().rss for c in process.children(True)))
    except psutil.Error:
        return 0


def _drain(gateways: list[GatewayProcess]) -> None:
    """Wait until no gateway has anything left to send."""

    def idle() -> bool:
        for g in gateways:
            queues = httpx.get(f"{g.url}/ready", timeout=5).json().get("queues", {})
            if any(int(v) for v in queues.values()):
                return False
        return True

    try:
        wait_until(idle, timeout=120, what="the gateways to drain their queues")
    except AssertionError:
        states = [httpx.get(f"{g.url}/ready", timeout=5).json() for g in gateways]
        raise AssertionError(f"the gateways did not drain: {json.dumps(states)}") from None


def _check(cluster: Cluster, tally: Tally, rss: list[float], elapsed: float) -> dict[str, Any]:
    ledger = cluster.ledger
    deployment = ledger.deployment
    report = replay(cluster.devnet.anvil.url, deployment, ledger=ledger)
    anchored: Counter[str] = Counter()
    reader, decoder = LogReader(cluster.devnet.anvil.url, deployment), Decoder(deployment)
    for _, _, logs in reader.chunks(deployment.deployment_block, reader.head()):
        for log in logs:
            event = decoder.decode(log)
            if event is not None and event.name == "RecordAnchored":
                anchored[event.args["recordId"]] += 1
    # a signature's r identifies it (the log keeps r and vs, EIP-2098; the header r, s and v)
    logged = Counter(d.signature.lower()[:66] for d in report.disclosures)
    revoked_at = {c.consent_id: c.revoked_block for c in report.consents.values()}
    seen_revoked = dict(tally.revocations)
    after_revocation = [
        r
        for r in tally.reads_ok
        if (revoked_at.get(r["consent"]) is not None and r["checkedBlock"] >= revoked_at[r["consent"]])
        or (r["consent"] in seen_revoked and r["sent"] > seen_revoked[r["consent"]])
    ]
    fifth = max(1, len(rss) // 5)
    early = statistics.median(rss[fifth : 2 * fifth]) if len(rss) >= 5 else 0.0
    late = statistics.median(rss[-fifth:]) if rss else 0.0
    anchors = Counter(anchored[r] for r in tally.accepted)
    logs = Counter(logged[r["signature"].lower()[:66]] for r in tally.reads_ok)
    checks = {
        "audit_no_findings": not report.findings,
        "accepted_anchored_exactly_once": set(anchors) <= {1},
        "reads_logged_exactly_once": set(logs) <= {1},
        "no_read_after_revocation": not after_revocation,
        "no_unexpected_errors": not tally.errors,
        "memory_flat": late <= max(early * 1.25, early + 40),
    }
    return {
        "seconds": round(elapsed, 1),
        "requests": tally.requests,
        "records_accepted": len(tally.accepted),
        "reads_ok": len(tally.reads_ok),
        "reads_refused": dict(tally.refused),
        "grants": tally.grants,
        "revocations": len(tally.revocations),
        "chain_events": report.events,
        "accepted_by_times_anchored": dict(anchors),
        "reads_by_times_logged": dict(logs),
        "sample_unanchored": next((r for r in tally.accepted if anchored[r] != 1), None),
        "sample_logged_twice": [
            {"block": d.block, "tx": d.tx_hash, "checked": d.checked_block, "requestHash": d.request_hash}
            for d in report.disclosures
            if logged[d.signature.lower()[:66]] > 1
        ][:6],
        "reads_behind_findings": [
            r for r in tally.reads_ok if any(r["record"] == f.record_id for f in report.findings)
        ][:6],
        "sample_anchored_twice": [
            {"block": r.block, "tx": r.tx_hash} for r in report.records.values() if anchored[r.record_id] > 1
        ][:6],
        "findings": [f.to_json() for f in report.findings],
        "errors": tally.errors[:20],
        "rss_mb_early_median": round(early, 1),
        "rss_mb_late_median": round(late, 1),
        "rss_mb_max": round(max(rss, default=0.0), 1),
        "rss_samples_mb": [round(x, 1) for x in rss],
        "checks": checks,
    }


if __name__ == "__main__":
    sys.exit(main())
