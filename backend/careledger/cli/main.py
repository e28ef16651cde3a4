"""`careledger`: one command line for every role — council, clinics, insurers and researchers,
patients, auditors — and the tooling to run the network."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from careledger.cli.allowlist import app as allowlist_app
from careledger.cli.audit import app as audit_app
from careledger.cli.council import app as council_app
from careledger.cli.deploy import app as deploy_app
from careledger.cli.dev import dev
from careledger.cli.gateway import app as gateway_app
from careledger.cli.output import console, friendly
from careledger.cli.patient import app as patient_app
from careledger.cli.records import app as records_app
from careledger.cli.records import enrollments_app
from careledger.config import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="CareLedger command line.")
chain_app = typer.Typer(no_args_is_help=True, help="Local chain and contract deployment.")
app.add_typer(chain_app, name="chain")
app.add_typer(gateway_app, name="gateway")
app.add_typer(audit_app, name="audit")
app.add_typer(council_app, name="council")
app.add_typer(records_app, name="records")
app.add_typer(enrollments_app, name="enrollments")
app.add_typer(patient_app, name="patient")
app.add_typer(deploy_app, name="deploy")
app.add_typer(allowlist_app, name="allowlist")
app.command("dev")(dev)


@chain_app.command("up")
@friendly
def chain_up(
    port: Annotated[int, typer.Option(help="Loopback port for anvil; 0 picks a free one.")] = 0,
    block_time: Annotated[
        float | None, typer.Option(help="Seconds per block; default mines on demand.")
    ] = None,
    deployment_file: Annotated[Path | None, typer.Option(help="Where to write the deployment file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the deployment as JSON.")] = False,
    exit_after_deploy: Annotated[
        bool, typer.Option(help="Stop anvil right after deploying (for checks).")
    ] = False,
) -> None:
    """Start anvil from node_modules on loopback, deploy the contracts, serve until Ctrl-C."""
    from careledger.chain.devnet import start_devnet  # compiles: loaded only when needed

    settings = Settings()
    target = deployment_file or settings.deployment_file
    with console.status("starting anvil and deploying the contracts…"):
        devnet = start_devnet(port=port or None, block_time=block_time)
    try:
        devnet.deployment.save(target)
        if as_json:
            print(json.dumps({"rpcUrl": devnet.anvil.url, "deploymentFile": str(target), **_summary(devnet)}))
        else:
            _print_devnet(devnet.anvil.url, target, devnet.deployment.to_json())
        if exit_after_deploy:
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        console.print("[dim]anvil is running; Ctrl-C stops it.[/]")
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    finally:
        devnet.anvil.stop()


def _summary(devnet: Any) -> dict[str, Any]:
    d = devnet.deployment
    return {
        "chainId": d.chain_id,
        "deploymentBlock": d.deployment_block,
        "contracts": {name: c.address for name, c in d.contracts.items()},
        "council": d.council,
        "threshold": d.threshold,
    }


def _print_devnet(url: str, deployment_file: Path, raw: dict[str, Any]) -> None:
    from careledger.chain.devnet import COUNCIL_INDEXES, COUNCIL_THRESHOLD, DEPLOYER_INDEX

    table = Table(title="CareLedger local chain", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value")
    table.add_row("JSON-RPC", url)
    table.add_row("chain id", str(raw["chainId"]))
    table.add_row("deployment file", str(deployment_file))
    for name, c in raw["contracts"].items():
        table.add_row(name, c["address"])
    seats = ", ".join(raw["governance"]["council"])
    table.add_row("council", f"{seats} (threshold {raw['governance']['threshold']})")
    table.add_row(
        "dev accounts",
        f"anvil mnemonic: deployer #{DEPLOYER_INDEX}, council #{COUNCIL_INDEXES[0]}-#{COUNCIL_INDEXES[-1]} "
        f"({COUNCIL_THRESHOLD} of {len(COUNCIL_INDEXES)})",
    )
    console.print(table)


if __name__ == "__main__":
    app()
