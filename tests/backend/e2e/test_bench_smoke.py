"""bench/run with tiny sizes, so the benchmark cannot rot: every result file is written with
its keys and sane values, and docs/performance.md with its charts (no timing thresholds).
The gas part is checked by tests/backend/integration/chain/test_gas.py; the profile part is
skipped to keep this under a minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
REQUIRED = {
    "ingest": ("records_per_s", "baseline_records_per_s", "p99_to_anchor_s"),
    "read": ("reads_per_s", "p50_ms", "p99_ms", "baseline_reads_per_s", "gateway_peak_rss_mb"),
    "consent": ("grants_per_s", "baseline_grants_per_s"),
}


def test_bench_run_smoke_writes_every_result(tmp_path: Path) -> None:
    results, docs = tmp_path / "results", tmp_path / "docs" / "performance.md"
    run = subprocess.run(
        [str(ROOT / "bench" / "run"), "--smoke", "--results", str(results), "--docs", str(docs),
         "--skip", "profile,gas"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    for scenario, keys in REQUIRED.items():
        result = json.loads((results / f"{scenario}.json").read_text())
        for key in keys:
            assert isinstance(result[key], int | float) and result[key] > 0, (scenario, key, result[key])
        assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"]
        assert result["versions"]["anvil"].startswith("anvil")
        assert "automine" in result["mining"]
        assert result["headline_cell"] == "automine/sqlite"
    ingest = json.loads((results / "ingest.json").read_text())
    bundles = ingest["cells"]["automine/sqlite"]["ingest"]["bundles"]
    assert bundles["records_anchored"] == bundles["records_accepted"] > 0  # every accepted record anchored
    gauge = ingest["cells"]["automine/sqlite"]["speed_gauge_ms"]  # the machine's speed, start and end
    assert len(gauge) == 2 and all(g > 0 for g in gauge)
    read = json.loads((results / "read.json").read_text())
    closed = read["cells"]["automine/sqlite"]["read"]["closed"]
    assert closed["refused"] == 0 and closed["logged"] == closed["answered"] > 0  # every read logged
    consent = json.loads((results / "consent.json").read_text())
    assert consent["cells"]["automine/sqlite"]["consent"]["grants_mined"] > 0

    audit = json.loads((results / "audit.json").read_text())
    assert audit["events"] > 0 and audit["findings"] == 0
    assert audit["replay_events_per_s"] > 0 and audit["baseline_events_per_s"] > 0

    page = docs.read_text()
    for needle in (
        "## Targets",
        "records anchored/s",
        "grants mined/s",
        "perf-throughput.png",
        "Speed gauge",
    ):
        assert needle in page
    for chart in ("perf-throughput.png", "perf-cells.png", "perf-read-latency.png"):
        assert (docs.parent / "img" / chart).stat().st_size > 1000

    # the page again from result files of a run before the speed gauge (--report-only)
    for cell in ingest["cells"].values():
        del cell["speed_gauge_ms"]
    (results / "ingest.json").write_text(json.dumps(ingest))
    again = subprocess.run(
        [str(ROOT / "bench" / "run"), "--report-only", "--results", str(results), "--docs", str(docs)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "automine/sqlite not recorded" in docs.read_text()
