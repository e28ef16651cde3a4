"""`careledger audit`: an auditor's checks of the network, with chain access and an AUDITOR key.

Every command prints a readable summary (or, with --json, one JSON document on stdout),
can write its JSON report to a file, and exits 0 when clean, 1 on an error, and 2 when it
found anything CRITICAL or HIGH.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from careledger.audit.model import AuditReport, Finding, Severity
from careledger.audit.replay import events_per_second, replay
from careledger.audit.report import accounting_fhir, accounting_json, verdict, write_reports
from careledger.audit.store import StoreVerification, verify_store
from careledger.cli.common import connect, find_member
from careledger.cli.output import console, err_console, friendly
from careledger.client import CareLedgerClient
from careledger.config import Settings
from careledger.crypto.keyfile import load_private_key

EXIT_FINDINGS = 2
FAILING = (Severity.CRITICAL, Severity.HIGH)

app = typer.Typer(
    no_args_is_help=True,
    help="Audit the network: replay the chain, verify a custodian's store, account for disclosures. "
    "Exit codes: 0 clean, 1 error, 2 CRITICAL or HIGH findings.",
)


@app.callback()
def audit() -> None:
    """Audit the network: replay the chain, verify a custodian's store, account for disclosures.

    Exit codes: 0 clean, 1 error, 2 CRITICAL or HIGH findings.
    """


# Options every audit command shares.
RpcUrl = Annotated[str | None, typer.Option(help="JSON-RPC URL of the chain (default: CARELEDGER_RPC_URL).")]
DeploymentFile = Annotated[
    Path | None,
    typer.Option(help="Deployment file (default: CARELEDGER_DEPLOYMENT_FILE).", dir_okay=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as one JSON document on stdout.")]
OutFile = Annotated[Path | None, typer.Option("--out", help="Also write the JSON report to this file.")]
KeyFile = Annotated[
    Path,
    typer.Option(help="The auditor's signing key (hex): a key of an active AUDITOR member.", dir_okay=False),
]


@contextmanager
def paging(what: str) -> Iterator[Any]:
    """A progress bar on stderr (stdout stays clean for --json); yields a (done, total) callback."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def emit(report: dict[str, Any], as_json: bool, out: Path | None) -> None:
    """Write the JSON report to `out` if given; print it on stdout with --json."""
    text = json.dumps(report, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    if as_json:
        print(text, flush=True)


def findings_table(findings: list[Finding]) -> Table:
    table = Table(title=f"Findings ({len(findings)})", header_style="bold", show_lines=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("record", overflow="fold")
    table.add_column("block", justify="right")
    table.add_column("finding", overflow="fold")
    style = {
        Severity.CRITICAL: "bold red",
        Severity.HIGH: "red",
        Severity.MEDIUM: "yellow",
        Severity.INFO: "dim",
    }
    for f in findings:
        table.add_row(
            f"[{style[f.severity]}]{f.severity.value}[/]",
            f.code,
            f.record_id or "",
            "" if f.block is None else str(f.block),
            f.message,
        )
    return table


def exit_for(findings: list[Finding]) -> None:
    """Exit code 2 when anything CRITICAL or HIGH was found."""
    if any(f.severity in FAILING for f in findings):
        raise typer.Exit(EXIT_FINDINGS)


# ---------------------------------------------------------------------- verify-store


@app.command("verify-store")
@friendly
def verify_store_command(
    custodian: Annotated[
        str, typer.Option(help="The custodian (CLINIC member) whose store to verify: name or address.")
    ],
    key_file: KeyFile,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    base_url: Annotated[
        str | None, typer.Option(help="The gateway's URL (default: its endpoint registered on chain).")
    ] = None,
    pending_grace: Annotated[
        float, typer.Option(help="Seconds a stored record may wait to be anchored before it is a finding.")
    ] = 300.0,
    as_json: AsJson = False,
    out: OutFile = None,
) -> None:
    """Check a custodian's store against the chain, through requests signed as an AUDITOR.

    The gateway hands over ciphertexts, salts and plaintext digests, never plaintext.

    Each commitment is recomputed here and compared with the one anchored on chain.

    Findings: store-tampered, store-missing, store-never-anchored, store-erased-but-present,
    store-erased-not-marked; store-pending (info) for records within the grace period.

    Exit codes: 0 clean, 1 error, 2 CRITICAL or HIGH findings.
    """
    ledger = connect(rpc_url, deployment_file)
    client = CareLedgerClient(load_private_key(key_file), ledger)
    try:
        with paging("reading the custodian's store") as progress:
            result = verify_store(
                ledger,
                client,
                find_member(ledger, custodian).address,
                base_url=base_url,
                pending_grace_s=pending_grace,
                progress=progress,
            )
    finally:
        client.close()
    emit(result.to_json(), as_json, out)
    if not as_json:
        _print_store(result)
    exit_for(result.findings)


def _print_store(result: StoreVerification) -> None:
    counts = result.counts
    table = Table(title="Store verification", header_style="bold", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("custodian", result.custodian)
    table.add_row("gateway", result.endpoint)
    table.add_row("chain", f"chain id {result.chain_id}, block {result.block}")
    table.add_row("records in the store", str(counts.get("storeRecords", 0)))
    table.add_row("anchored on chain", str(counts.get("anchoredOnChain", 0)))
    table.add_row("erased on chain", str(counts.get("erasedOnChain", 0)))
    table.add_row("verified against the chain", str(counts.get("verified", 0)))
    table.add_row("erased (consistent)", str(counts.get("erased", 0)))
    table.add_row("pending (within grace)", str(counts.get("pending", 0)))
    table.add_row("time", f"{result.timings.get('totalS', 0):.2f} s")
    console.print(table)
    if result.findings:
        console.print(findings_table(result.findings))
    verdict = "[bold red]FAILED[/]" if result.failed else "[bold green]OK[/]"
    console.print(f"{verdict}: {len(result.findings)} finding(s)")


if __name__ == "__main__":
    app()


# ---------------------------------------------------------------------- replay


@app.command("replay")
@friendly
def replay_command(
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    reports: Annotated[
        Path | None, typer.Option(help="Write audit.json and the HTML report audit.html into this folder.")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="Keep fetched log chunks here, so an interrupted replay resumes.")
    ] = None,
    to_block: Annotated[int | None, typer.Option(help="Stop at this block (default: the head).")] = None,
    as_json: AsJson = False,
    out: OutFile = None,
) -> None:
    """Replay every event from the deployment block, check the rules, cross-check the contracts."""
    ledger = connect(rpc_url, deployment_file)
    with paging("replaying events") as update:
        report = replay(
            rpc_url or Settings().rpc_url,
            ledger.deployment,
            to_block=to_block,
            ledger=ledger,
            cache=cache,
            progress=lambda done, total, _events: update(done, total),
        )
    emit(report.to_json(), as_json, out)
    if reports is not None:
        written = write_reports(report, reports)
        if not as_json:
            console.print(f"reports: {written['html']} and {written['json']}")
    if not as_json:
        _print_replay(report)
    exit_for(report.findings)


def _print_replay(report: AuditReport) -> None:
    summary = Table(title="Replay", header_style="bold", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    rows = [
        ("blocks", f"{report.from_block} to {report.to_block}"),
        ("events", f"{report.events:,}"),
        ("members", str(len(report.members))),
        ("consents", str(len(report.consents))),
        ("records", str(len(report.records))),
        ("disclosures", str(len(report.disclosures))),
        ("break-glass to review", str(len(report.review_queue))),
        ("events/s", f"{events_per_second(report):,.0f}"),
    ]
    for what, value in rows:
        summary.add_row(what, value)
    console.print(summary)
    console.print(verdict(report))
    if report.findings:
        console.print(findings_table(report.findings))


# ---------------------------------------------------------------------- accounting


@app.command("accounting")
@friendly
def accounting_command(
    patient: Annotated[str, typer.Option(help="The patient's pseudonym (one per custodian).")],
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    fhir: Annotated[
        bool, typer.Option("--fhir", help="A FHIR R4 Bundle of AuditEvent (IHE BALP) instead.")
    ] = False,
    out: OutFile = None,
) -> None:
    """The accounting of disclosures of one pseudonym's records (HIPAA 164.528), from the chain."""
    ledger = connect(rpc_url, deployment_file)
    with paging("replaying events") as update:
        report = replay(
            rpc_url or Settings().rpc_url,
            ledger.deployment,
            progress=lambda done, total, _events: update(done, total),
        )
    document = accounting_fhir(report, patient.lower()) if fhir else accounting_json(report, patient.lower())
    emit(document, True, out)
