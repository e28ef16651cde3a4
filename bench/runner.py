"""`bench/run`: every scenario against its naive baseline, in one run, on this machine.

For each cell — anvil automine or `--block-time 1`, SQLite or PostgreSQL — it starts anvil,
deploys, admits a clinic and an insurer, starts the clinic's gateway, enrolls patients and
runs ingest, consent and read with their baselines. Then the audit replay (bench/audit.py)
and the gas report (bench/gas.py), a profile of the read and ingest paths, and it writes
bench/results/<scenario>.json and docs/performance.md with charts in docs/img/.

Run: `bench/run` (about 5 minutes); `bench/run --smoke` is the tiny run the test suite does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import harness, scenarios
from bench.harness import AUTOMINE, BLOCK_TIME_1, ROOT, Mode

TARGETS = {
    "ingest": {"records_per_s": 3000, "p99_to_anchor_s": 5.0, "speedup": 40},
    "read": {"reads_per_s": 800, "p50_ms": 5.0, "p99_ms": 25.0, "gateway_peak_rss_mb": 250},
    "consent": {"grants_per_s": 300},
    "audit": {"replay_events_per_s": 30000},
}
HEADLINE = "automine/sqlite"


def run_cell(mode: Mode, db_kind: str, sizes: scenarios.Sizes, work: Path, log: Any) -> dict[str, Any]:
    started = time.perf_counter()
    out: dict[str, Any] = {
        "mining": mode.name,
        "database": db_kind,
        "speed_gauge_ms": [harness.speed_gauge()],
    }
    with harness.cell(mode, db_kind, work / f"{mode.name}-{db_kind}") as c:
        out["versions"] = harness.versions(c.devnet)
        harness.enroll_patients(c, sizes.patients)
        log(f"  {mode.name}/{db_kind}: cluster up, {sizes.patients} patients enrolled")
        out["ingest"] = scenarios.ingest(c, sizes, "i")
        out["ingest_baseline"] = scenarios.ingest_baseline(c, sizes)
        log(f"  ingest {out['ingest']['bundles']['records_per_s']} rec/s "
            f"(baseline {out['ingest_baseline']['records_per_s']})")  # fmt: skip
        out["consent"] = scenarios.consent(c, sizes)
        out["consent_baseline"] = scenarios.consent_baseline(c, sizes)
        log(f"  consent {out['consent']['grants_per_s']} grants/s "
            f"(baseline {out['consent_baseline']['grants_per_s']})")  # fmt: skip
        scenarios.grant_readers(c)
        out["read"] = scenarios.read(c, sizes)
        out["read_baseline"] = scenarios.read_baseline(c, sizes)
        log(f"  read {out['read']['closed']['reads_per_s']} reads/s, p50/p99 at "
            f"{sizes.read_rate:g}/s {out['read']['open']['p50_ms']}/{out['read']['open']['p99_ms']} ms "
            f"(baseline {out['read_baseline']['reads_per_s']})")  # fmt: skip
    out["speed_gauge_ms"].append(harness.speed_gauge())
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def assemble(cells: dict[str, dict[str, Any]], meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-scenario result files: headline keys from automine/SQLite, every cell beside."""
    head = cells.get(HEADLINE) or next(iter(cells.values()))
    common = {**meta, "headline_cell": f"{head['mining']}/{head['database']}"}
    ingest = {
        "records_per_s": head["ingest"]["bundles"]["records_per_s"],
        "baseline_records_per_s": head["ingest_baseline"]["records_per_s"],
        "p99_to_anchor_s": head["ingest"]["bundles"]["p99_to_anchor_s"],
        "single_records_per_s": head["ingest"]["singles"]["records_per_s"],
        "speedup": _ratio(
            head["ingest"]["bundles"]["records_per_s"], head["ingest_baseline"]["records_per_s"]
        ),
        "targets": TARGETS["ingest"],
        "cells": {
            k: {
                "ingest": v["ingest"],
                "baseline": v["ingest_baseline"],
                "speed_gauge_ms": v["speed_gauge_ms"],
            }
            for k, v in cells.items()
        },
    }
    read = {
        "reads_per_s": head["read"]["closed"]["reads_per_s"],
        "p50_ms": head["read"]["open"]["p50_ms"],
        "p99_ms": head["read"]["open"]["p99_ms"],
        "offered_reads_per_s": head["read"]["open"]["rate"],
        "baseline_reads_per_s": head["read_baseline"]["reads_per_s"],
        "gateway_peak_rss_mb": head["read"]["gateway_peak_rss_mb"],
        "targets": TARGETS["read"],
        "cells": {k: {"read": v["read"], "baseline": v["read_baseline"]} for k, v in cells.items()},
    }
    consent = {
        "grants_per_s": head["consent"]["grants_per_s"],
        "baseline_grants_per_s": head["consent_baseline"]["grants_per_s"],
        "targets": TARGETS["consent"],
        "cells": {k: {"consent": v["consent"], "baseline": v["consent_baseline"]} for k, v in cells.items()},
    }
    return {name: {**body, **common} for name, body in
            {"ingest": ingest, "read": read, "consent": consent}.items()}  # fmt: skip


def _ratio(a: float, b: float) -> float:
    return round(a / b, 1) if b else 0.0


def rewrite_report(results: Path, docs: Path) -> int:
    """docs/performance.md again from the result files of the last run (after editing notes)."""
    from bench import report

    files = {n: json.loads((results / f"{n}.json").read_text()) for n in ("ingest", "read", "consent")}
    cells: dict[str, dict[str, Any]] = {}
    for key in files["ingest"]["cells"]:
        mining, database = key.split("/")
        cells[key] = {
            "mining": mining,
            "database": database,
            "ingest": files["ingest"]["cells"][key]["ingest"],
            "ingest_baseline": files["ingest"]["cells"][key]["baseline"],
            "read": files["read"]["cells"][key]["read"],
            "read_baseline": files["read"]["cells"][key]["baseline"],
            "consent": files["consent"]["cells"][key]["consent"],
            "consent_baseline": files["consent"]["cells"][key]["baseline"],
            "speed_gauge_ms": files["ingest"]["cells"][key].get("speed_gauge_ms", []),
        }
    extra = {}
    for name in ("audit", "gas", "profile"):
        path = results / f"{name}.json"
        extra[name] = json.loads(path.read_text()) if path.exists() else {}
    total = float(files["ingest"].get("run_s", 0))
    report.write(docs, files, cells, extra["audit"], extra["gas"], extra["profile"], TARGETS, total_s=total)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one cell (the test suite's run)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument(
        "--cells", default=None, help="comma-separated cells, e.g. automine/sqlite,block-time-1/postgresql"
    )
    parser.add_argument("--skip", default="", help="comma-separated: audit,gas,profile")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite docs/performance.md from the result files"
    )
    args = parser.parse_args(argv)
    if args.report_only:
        return rewrite_report(args.results, args.docs)

    sizes = scenarios.SMOKE if args.smoke else scenarios.Sizes()
    default_cells = "automine/sqlite" if args.smoke else (
        "automine/sqlite,automine/postgresql,block-time-1/sqlite,block-time-1/postgresql")  # fmt: skip
    modes = {m.name: m for m in (AUTOMINE, BLOCK_TIME_1)}
    skip = set(filter(None, args.skip.split(",")))
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    args.results.mkdir(parents=True, exist_ok=True)
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "machine": harness.machine(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mining": "automine (headline); every cell also in 'cells', incl. --block-time 1",
        "database": "sqlite (headline); postgresql in 'cells'",
        "sizes": sizes.__dict__,
    }
    cells: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="careledger-bench-") as tmp:
        for name in (args.cells or default_cells).split(","):
            mode_name, db_kind = name.split("/")
            log(f"cell {name}")
            try:
                cells[name] = run_cell(modes[mode_name], db_kind, sizes, Path(tmp), log)
            except Exception:  # one failing cell is reported, the others still run
                log(f"cell {name} FAILED:\n{traceback.format_exc()}")
                if args.smoke:
                    raise
        if not cells:
            return 1
        meta["versions"] = next(iter(cells.values()))["versions"]
        for name, body in assemble(cells, meta).items():
            (args.results / f"{name}.json").write_text(json.dumps(body, indent=2) + "\n")
            log(f"wrote {args.results / (name + '.json')}")
        profile: dict[str, Any] = {}
        if "profile" not in skip:
            from bench import profile as profiling

            log("profile of the read and ingest paths (pyinstrument)")
            profile = profiling.run(Path(tmp) / "profile", args.results, small=args.smoke)
    audit: dict[str, Any] = {}
    if "audit" not in skip:
        from bench import audit as audit_bench

        log("audit replay (bench/audit.py)")
        audit = audit_bench.run(small=args.smoke, out=args.results / "audit.json")
    elif (args.results / "audit.json").exists():
        audit = json.loads((args.results / "audit.json").read_text())
    gas: dict[str, Any] = {}
    if "gas" not in skip:
        from bench import gas as gas_bench

        log("gas (bench/gas.py)")
        gas = gas_bench.run(out=args.results / "gas.json", docs=args.docs.parent / "gas.md")
    elif (args.results / "gas.json").exists():
        gas = json.loads((args.results / "gas.json").read_text())
    from bench import report

    files = {n: json.loads((args.results / f"{n}.json").read_text()) for n in ("ingest", "read", "consent")}
    for name, body in files.items():  # the whole run's duration, for the report
        body["run_s"] = round(time.perf_counter() - started, 1)
        body["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        (args.results / f"{name}.json").write_text(json.dumps(body, indent=2) + "\n")
    report.write(args.docs, files, cells, audit, gas, profile, TARGETS, total_s=time.perf_counter() - started)
    log(f"wrote {args.docs} and its charts; total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
