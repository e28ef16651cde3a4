"""docs/performance.md and its charts (docs/img/perf-*.png) from one bench/run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.harness import ROOT

NOTES = ROOT / "bench" / "notes.md"
MEDREC = {"grant a viewer": 434_999, "add a relationship": 2_044_643}


def _met(value: float, target: float, *, at_most: bool = False) -> str:
    ok = value <= target if at_most else value >= target
    return "met" if ok else "**not met**"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 10 else f"{value:,.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _half(read: dict[str, Any]) -> str:
    half = read.get("open_half")
    if not half:
        return ""
    return f"{_fmt(half['p50_ms'])} / {_fmt(half['p99_ms'])} ({half['rate']:g}/s)"


def charts(img: Path, files: dict[str, Any], cells: dict[str, Any], audit: dict[str, Any]) -> list[str]:
    img.mkdir(parents=True, exist_ok=True)
    names = []
    # 1. each scenario against its baseline (headline cell), log scale
    ingest, read, consent = files["ingest"], files["read"], files["consent"]
    labels = ["ingest\nrecords/s", "read\nreads/s", "consent\ngrants/s"]
    ours = [ingest["records_per_s"], read["reads_per_s"], consent["grants_per_s"]]
    base = [ingest["baseline_records_per_s"], read["baseline_reads_per_s"], consent["baseline_grants_per_s"]]
    targets = [ingest["targets"]["records_per_s"], read["targets"]["reads_per_s"],
               consent["targets"]["grants_per_s"]]  # fmt: skip
    if audit:
        labels.append("audit\nevents/s")
        ours.append(audit.get("replay_events_per_s", 0))
        base.append(audit.get("baseline_events_per_s", 0))
        targets.append(30000)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], ours, 0.4, label="CareLedger")
    ax.bar([i + 0.2 for i in x], base, 0.4, label="naive baseline")
    ax.scatter(list(x), targets, marker="_", s=900, color="black", label="target", zorder=3)
    ax.set_yscale("log")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("per second (log scale)")
    ax.set_title(f"Throughput vs naive baseline ({ingest['headline_cell']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(img / "perf-throughput.png", dpi=110)
    plt.close(fig)
    names.append("perf-throughput.png")
    # 2. throughput per cell
    keys = list(cells)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    series = [
        ("ingest records/s (Bundles)", lambda v: v["ingest"]["bundles"]["records_per_s"]),
        ("reads/s (closed loop)", lambda v: v["read"]["closed"]["reads_per_s"]),
        ("grants mined/s", lambda v: v["consent"]["grants_per_s"]),
    ]
    for ax, (title, get) in zip(axes, series, strict=True):
        ax.bar(range(len(keys)), [get(cells[k]) for k in keys], color="tab:blue")
        ax.set_xticks(range(len(keys)), [k.replace("/", "\n") for k in keys], fontsize=7)
        ax.set_title(title, fontsize=9)
    fig.suptitle("Per cell: anvil mining mode / database")
    fig.tight_layout()
    fig.savefig(img / "perf-cells.png", dpi=110)
    plt.close(fig)
    names.append("perf-cells.png")
    # 3. read latency at the fixed arrival rate
    fig, ax = plt.subplots(figsize=(7, 3.6))
    p50 = [cells[k]["read"]["open"]["p50_ms"] for k in keys]
    p99 = [cells[k]["read"]["open"]["p99_ms"] for k in keys]
    ax.bar([i - 0.2 for i in range(len(keys))], p50, 0.4, label="p50")
    ax.bar([i + 0.2 for i in range(len(keys))], p99, 0.4, label="p99")
    ax.axhline(5, color="tab:blue", ls=":", label="p50 target 5 ms")
    ax.axhline(25, color="tab:orange", ls=":", label="p99 target 25 ms")
    ax.set_yscale("log")
    ax.set_xticks(range(len(keys)), [k.replace("/", "\n") for k in keys], fontsize=8)
    ax.set_ylabel("ms (log scale)")
    ax.set_title(f"Read latency at {read['offered_reads_per_s']:g} reads/s offered (open loop)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(img / "perf-read-latency.png", dpi=110)
    plt.close(fig)
    names.append("perf-read-latency.png")
    return names


def write(
    docs: Path,
    files: dict[str, Any],
    cells: dict[str, Any],
    audit: dict[str, Any],
    gas: dict[str, Any],
    profile: dict[str, Any],
    targets: dict[str, Any],
    *,
    total_s: float,
) -> None:
    img = docs.parent / "img"
    charts(img, files, cells, audit)
    ingest, read, consent = files["ingest"], files["read"], files["consent"]
    m = ingest["machine"]
    v = ingest.get("versions", {})
    lines = [
        "# Performance",
        "",
        "Written by `bench/run` (bench/runner.py) from one run; every figure below comes from the",
        "result files in bench/results/ of that run. Do not edit by hand: the prose that is not",
        "generated lives in bench/notes.md.",
        "",
        f"- Measured {ingest['measured_at']} on {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_gb']} GB, {m['os']}; the whole run took {total_s / 60:.1f} min.",
        f"- Load average (1, 5, 15 min) at the start {ingest.get('load_average_at_start')}, at the end "
        f"{ingest.get('load_average_at_end')} (the run itself keeps about 2-3 tasks runnable; "
        "more is other work).",
        "- Speed gauge (`harness.speed_gauge`: ms for a fixed pure-Python loop, lower is faster; "
        "each cell's start → end): "
        + "; ".join(
            f"{key} {' → '.join(f'{g:g}' for g in c.get('speed_gauge_ms') or []) or 'not recorded'}"
            for key, c in cells.items()
        )
        + ". Compare runs only beside it (bench/notes.md).",
        "- anvil, the gateway(s) and the load generator share those cores. Versions: "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + ".",
        f"- Headline cell: anvil **{ingest['headline_cell'].split('/')[0]}**, "
        f"**{ingest['headline_cell'].split('/')[1]}**; the other cells are in the tables below.",
        "",
        "## Targets",
        "",
        "| scenario | measured | naive baseline (same run) | target | |",
        "|---|---|---|---|---|",
        f"| ingest, Bundles of {ingest['sizes']['bundle_size']}: records anchored/s | "
        f"{_fmt(ingest['records_per_s'])} | {_fmt(ingest['baseline_records_per_s'])} "
        f"({_fmt(ingest['speedup'])}x) | ≥ 3,000 and ≥ 40x | "
        f"{_met(ingest['records_per_s'], 3000)}; {_met(ingest['speedup'], 40)} |",
        f"| ingest: p99 acceptance → anchored | {_fmt(ingest['p99_to_anchor_s'])} s | | ≤ 5 s | "
        f"{_met(ingest['p99_to_anchor_s'], 5, at_most=True)} |",
        f"| read: authorized reads/s, disclosures mined | {_fmt(read['reads_per_s'])} | "
        f"{_fmt(read['baseline_reads_per_s'])} | ≥ 800 | {_met(read['reads_per_s'], 800)} |",
        f"| read at {read['offered_reads_per_s']:g}/s offered: p50 | {_fmt(read['p50_ms'])} ms | | ≤ 5 ms | "
        f"{_met(read['p50_ms'], 5, at_most=True)} |",
        f"| read at {read['offered_reads_per_s']:g}/s offered: p99 | {_fmt(read['p99_ms'])} ms | | ≤ 25 ms | "
        f"{_met(read['p99_ms'], 25, at_most=True)} |",
        f"| read: gateway peak RSS (all processes) | {_fmt(read['gateway_peak_rss_mb'])} MB | | ≤ 250 MB | "
        f"{_met(read['gateway_peak_rss_mb'], 250, at_most=True)} |",
        f"| consent: grants mined/s | {_fmt(consent['grants_per_s'])} | "
        f"{_fmt(consent['baseline_grants_per_s'])} | ≥ 300 | {_met(consent['grants_per_s'], 300)} |",
    ]
    if audit:
        lines.append(
            f"| audit: replay events/s ({audit.get('events', 0):,} events) | "
            f"{_fmt(audit.get('replay_events_per_s', 0))} | {_fmt(audit.get('baseline_events_per_s', 0))} "
            f"(web3.py decoding) | ≥ 30,000 | {_met(audit.get('replay_events_per_s', 0), 30000)} |"
        )
    lines += [
        "",
        "![throughput](img/perf-throughput.png)",
        "",
        "## Every cell",
        "",
        "Automine mines each transaction as it arrives; `--block-time 1` mines one block a second,",
        "closer to a production QBFT network (a transaction waits for the next block).",
        "",
        "| cell | ingest rec/s (Bundles) | p99 → anchored | singles rec/s | baseline rec/s | reads/s | "
        f"p50 / p99 ms at {read['offered_reads_per_s']:g}/s | p50 / p99 ms at ½ reads/s | baseline reads/s | "
        "grants/s | baseline grants/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, c in cells.items():
        lines.append(
            f"| {key} | {_fmt(c['ingest']['bundles']['records_per_s'])} | "
            f"{_fmt(c['ingest']['bundles']['p99_to_anchor_s'])} s | "
            f"{_fmt(c['ingest']['singles']['records_per_s'])} | "
            f"{_fmt(c['ingest_baseline']['records_per_s'])} | {_fmt(c['read']['closed']['reads_per_s'])} | "
            f"{_fmt(c['read']['open']['p50_ms'])} / {_fmt(c['read']['open']['p99_ms'])} | "
            f"{_half(c['read'])} | "
            f"{_fmt(c['read_baseline']['reads_per_s'])} | {_fmt(c['consent']['grants_per_s'])} | "
            f"{_fmt(c['consent_baseline']['grants_per_s'])} | {_fmt(c['read']['gateway_peak_rss_mb'])} |"
        )
    lines += [
        "",
        "![cells](img/perf-cells.png)",
        "",
        "![read latency](img/perf-read-latency.png)",
        "",
        "How each figure is counted:",
        "",
        "- **ingest**: closed loop of signed `POST /fhir` (transaction Bundles; then single",
        "  Observations), each request signed before the clock starts. Records/s = records",
        "  anchored ÷ (first request sent → last record anchored, by the gateway's `anchored_at`);",
        "  latency = `anchored_at - created_at` per record. Baseline: the same kind of record",
        "  anchored one per transaction with web3.py `contract.functions.anchor(…).transact()` +",
        "  `wait_for_transaction_receipt`.",
        "- **read**: closed loop of signed `GET /records/{id}?purpose=HPAYMT` by the insurer under",
        "  the patients' consents; only reads whose disclosure is mined count, over (first request",
        "  → last disclosure mined). Latency: open loop at a fixed arrival rate, measured from each",
        "  request's scheduled time. Baseline: per read an `isPermitted` call and one",
        "  `AccessLog.log` transaction through web3.py `transact()` + wait — the chain work",
        "  alone, an upper bound for a naive gateway.",
        "- **consent**: fresh patients each sign a grant and post it; counted when the gateway",
        "  answers `done` (mined). Baseline: `grantBySig` one at a time via web3.py.",
        "- **peak RSS**: resident memory summed over the gateway's processes, sampled every 0.2 s",
        "  during the read scenario.",
        "",
    ]
    if audit:
        lines += [
            "## Audit replay",
            "",
            f"{audit.get('events', 0):,} events replayed at "
            f"{_fmt(audit.get('replay_events_per_s', 0))} events/s",
            f"(replay {audit.get('replay_s')} s, cross-check {audit.get('cross_check_s')} s, "
            f"{audit.get('findings')} findings); web3.py's own decoding of the same history:",
            f"{_fmt(audit.get('baseline_events_per_s', 0))} events/s. See docs/audit.md.",
            "",
        ]
    if gas:
        lines += [
            "## Gas (deterministic; docs/gas.md)",
            "",
            "| operation | CareLedger gas | MedRec (measured) |",
            "|---|---|---|",
            f"| grant a consent / MedRec: grant a viewer | {gas.get('grant_consent', 0):,} | "
            f"{MEDREC['grant a viewer']:,} |",
            f"| admit a member / MedRec: add a relationship | {gas.get('admit_member', 0):,} | "
            f"{MEDREC['add a relationship']:,} |",
            f"| revoke a consent | {gas.get('revoke_consent', 0):,} | |",
            f"| anchor one record (batch of 100) | {gas.get('anchor_per_record_batch100', 0):,} | |",
            f"| log one disclosure (batch of 100) | {gas.get('log_access_per_entry_batch100', 0):,} | |",
        ]
        per_item = gas.get("grant_consent_per_item_batch100") or gas.get("extremes", {}).get(
            "grant_consent_per_item_batch100"
        )
        if per_item:
            lines.append(f"| grant a consent, per item of a grantBatchBySig of 100 | {per_item:,} | |")
        lines.append("")
    if profile:
        lines += ["## Where the time goes (pyinstrument, in-process, bench/profile.py)", ""]
        for name, p in profile.items():
            unit = "read" if name == "read" else "record"
            per = f"{p.get('ms_per_call', p.get('ms_per_record'))} ms per {unit}"
            when = f" (measured {p['measured_at']})" if "measured_at" in p else ""
            lines += [f"**{name}** — {per}, without HTTP{when}:", "", "| share | what |", "|---|---|"]
            lines += [f"| {r['share'] * 100:.0f} % | {r['what']} |" for r in p["where"]]
            lines.append("")
        lines += ["Full call trees: bench/results/profile-read.txt, bench/results/profile-ingest.txt.", ""]
    if NOTES.exists():
        lines += [NOTES.read_text().rstrip(), ""]
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text("\n".join(lines))
