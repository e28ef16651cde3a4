"""Where a read's and an ingest's time goes: the gateway's own code, in-process, under pyinstrument.

A real cell (anvil, a gateway process whose relayer anchors and logs) provides the state;
a second, in-process Gateway on the same database (its relayer off) then runs the request
path as the API route does — identify() and spend_nonce(), then access.read_record() or
ingest.ingest() — on pre-signed requests, so the profile shows the services, the store and
the chain client without the HTTP server. The HTTP layer's share is the difference to the
benchmark's latency.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pyinstrument import Profiler
from pyinstrument.frame import Frame

from bench import harness, scenarios
from bench.harness import AUTOMINE, CLINIC_KEY, INSURER_KEY, FastSigner
from bench.loadgen import Prepared
from careledger.codes import Purpose
from careledger.config import Settings
from careledger.services import access, ingest
from careledger.services.gateway import build_gateway, prepare_to_serve
from careledger.services.requests import identify, spend_nonce

# Functions whose inclusive time we report, by name (outermost match wins).
BUCKETS = {
    "verify_request": "signature check (RFC 9421, secp256k1 recovery)",
    "result": "waiting for the group commit (a lone request waits for its own commits)",
    "active_signer": "signer's membership (head block, then a cached eth_call)",
    "is_permitted": "consent check (eth_call)",
    "permitted": "consent check (cached, block-keyed)",
    "block_number": "head block (eth_blockNumber)",
    "head": "head block (eth_blockNumber; new blocks' events into the caches)",
    "_open": "decryption (AES-256-GCM, key unwrap)",
    "readable_record": "record and patient lookup",
    "parse_json": "JSON parse",
    "split_transaction": "FHIR validation",
    "check_record": "FHIR validation",
    "_store_version": "seal + store each record",
    "sealing_key": "key ring",
}


def _buckets(root: Frame | None, total: float) -> list[dict[str, Any]]:
    sums: dict[str, float] = {}

    def walk(frame: Frame) -> None:
        name = BUCKETS.get(frame.function)
        if name is not None:
            sums[name] = sums.get(name, 0.0) + frame.time
            return
        for child in frame.children:
            walk(child)

    if root is not None:
        walk(root)
    rows = [{"what": k, "share": round(v / total, 3) if total else 0.0} for k, v in sums.items()]
    rows.sort(key=lambda r: -float(r["share"]))
    covered = sum(float(r["share"]) for r in rows)
    rows.append(
        {"what": "other (session handling, ORM, framework glue)", "share": round(max(0.0, 1 - covered), 3)}
    )
    return rows


def _call(gw: Any, p: Prepared) -> Any:
    path = p.url.split("//", 1)[1]
    path = path[path.index("/") :]
    principal = identify(gw, method=p.method, path_and_query=path, body=p.body,
                         headers=dict(p.headers), host=None)  # fmt: skip
    spend_nonce(gw, principal)
    return principal


def run(work: Path, results: Path, *, small: bool = False) -> dict[str, Any]:
    sizes = scenarios.SMOKE if small else scenarios.Sizes()
    reads, bundles = (50, 3) if small else (400, 12)
    out: dict[str, Any] = {}
    with harness.cell(AUTOMINE, "sqlite", work) as c:
        harness.enroll_patients(c, 2)
        scenarios.ingest(c, scenarios.SMOKE, "p")
        scenarios.grant_readers(c)
        settings = Settings(
            rpc_url=c.devnet.anvil.url,
            deployment_file=work / "deployment.json",
            member_address=c.clinic.address,
            endpoint=c.url,
            database_url=c.db.url,
            kek_file=work / "kek.hex",
            relayer_enabled=False,
            log_level="WARNING",
        )
        gw = build_gateway(settings, migrate=False)
        prepare_to_serve()  # as the gateway's startup does
        try:
            record_ids = scenarios._readable(c)
            reader = FastSigner(INSURER_KEY)
            planned = [
                reader.prepare(
                    "GET", f"{c.url}/records/0x{record_ids[n % len(record_ids)].hex()}?purpose=HPAYMT"
                )
                for n in range(reads)
            ]
            for p in planned[:20]:  # warm-up
                access.read_record(
                    gw, _call(gw, p), bytes.fromhex(p.url.split("/0x")[1][:64]), Purpose.HPAYMT
                )
            profiler = Profiler(interval=0.0005)
            began = time.perf_counter()
            profiler.start()
            for p in planned[20:]:
                access.read_record(
                    gw, _call(gw, p), bytes.fromhex(p.url.split("/0x")[1][:64]), Purpose.HPAYMT
                )
            profiler.stop()
            elapsed = time.perf_counter() - began
            (results / "profile-read.txt").write_text(profiler.output_text(unicode=True, color=False))
            session = profiler.last_session
            measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            out["read"] = {
                "measured_at": measured_at,
                "calls": len(planned) - 20,
                "ms_per_call": round(elapsed / (len(planned) - 20) * 1000, 3),
                "where": _buckets(session.root_frame() if session else None, elapsed),
            }
            staff = FastSigner(CLINIC_KEY)
            docs = [
                scenarios._bundle_request(c, staff, c.patients[n % 2], f"prof{n}", sizes.bundle_size)
                for n in range(bundles)
            ]
            ingest.ingest(gw, _call(gw, docs[0]), docs[0].body)  # warm-up, as the reads have
            profiler = Profiler(interval=0.0005)
            began = time.perf_counter()
            profiler.start()
            for p in docs[1:]:
                ingest.ingest(gw, _call(gw, p), p.body)
            profiler.stop()
            elapsed = time.perf_counter() - began
            (results / "profile-ingest.txt").write_text(profiler.output_text(unicode=True, color=False))
            session = profiler.last_session
            out["ingest"] = {
                "measured_at": measured_at,
                "bundles": bundles - 1,
                "records": (bundles - 1) * sizes.bundle_size,
                "ms_per_record": round(elapsed / ((bundles - 1) * sizes.bundle_size) * 1000, 3),
                "where": _buckets(session.root_frame() if session else None, elapsed),
            }
        finally:
            gw.close()
    (results / "profile.json").write_text(json.dumps(out, indent=2) + "\n")
    return out
