"""`careledger dev`: the local network in one command — anvil, the contracts, a clinic admitted
by the council, and its gateway on SQLite, all on loopback until Ctrl-C."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.table import Table

from careledger.api.app import create_app
from careledger.chain.anvil import free_port
from careledger.chain.devnet import dev_key, start_devnet
from careledger.cli.output import console, friendly
from careledger.codes import Role
from careledger.config import Settings
from careledger.crypto.keyfile import create_key_file

CLINIC_INDEX, RELAYER_INDEX = 10, 15


@friendly
def dev(
    anvil_port: Annotated[int, typer.Option(help="anvil's port (0: a free one).")] = 8545,
    gateway_port: Annotated[int, typer.Option(help="The gateway's port (0: a free one).")] = 8001,
    directory: Annotated[
        Path, typer.Option(help="Where the dev network keeps its files (wiped at start).")
    ] = Path(".careledger/dev"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the addresses as one JSON line.")] = False,
) -> None:
    """Start anvil, deploy, admit Clinic A through the council, and serve its gateway."""
    shutil.rmtree(directory, ignore_errors=True)  # the chain is new every run; so is the store
    directory.mkdir(parents=True)
    gateway_port = gateway_port or free_port()
    endpoint = f"http://127.0.0.1:{gateway_port}"
    with console.status("starting anvil, deploying, admitting Clinic A…"):
        devnet = start_devnet(port=anvil_port or None)
    try:
        ledger, seats = devnet.ledger, devnet.council()
        clinic, relayer = ledger.sender(dev_key(CLINIC_INDEX)), ledger.sender(dev_key(RELAYER_INDEX))
        proposal = ledger.members.propose_admit(seats[0], clinic.address, Role.CLINIC, "Clinic A", endpoint)
        ledger.members.vote(seats[1], proposal)
        ledger.members.set_relayer(clinic, relayer.address)
        deployment = directory / "deployment.json"
        devnet.deployment.save(deployment)
        create_key_file(directory / "kek.hex")
        (directory / "relayer.key").write_text(dev_key(RELAYER_INDEX).hex())
        settings = Settings(
            rpc_url=devnet.anvil.url,
            deployment_file=deployment,
            member_address=clinic.address,
            endpoint=endpoint,
            database_url=f"sqlite:///{directory / 'gateway.db'}",
            kek_file=directory / "kek.hex",
            relayer_key_file=directory / "relayer.key",
        )
        summary: dict[str, Any] = {
            "rpcUrl": devnet.anvil.url,
            "gatewayUrl": endpoint,
            "deploymentFile": str(deployment),
            "clinic": clinic.address,
            "contracts": {name: c.address for name, c in devnet.deployment.contracts.items()},
        }
        if as_json:
            print(json.dumps(summary), flush=True)
        else:
            _print(summary)
        uvicorn.run(create_app(settings), host="127.0.0.1", port=gateway_port, log_level="warning")
    finally:
        devnet.anvil.stop()


def _print(summary: dict[str, Any]) -> None:
    table = Table(title="CareLedger dev network", header_style="bold")
    table.add_column("what")
    table.add_column("value")
    table.add_row("JSON-RPC (anvil)", str(summary["rpcUrl"]))
    table.add_row("gateway (Clinic A, SQLite)", str(summary["gatewayUrl"]))
    table.add_row("Clinic A", f"{summary['clinic']} (anvil dev account #{CLINIC_INDEX})")
    table.add_row("deployment file", str(summary["deploymentFile"]))
    for name, address in summary["contracts"].items():
        table.add_row(name, address)
    console.print(table)
    url = summary["gatewayUrl"]
    console.print(f"Try: curl {url}/ready  ·  API docs: {url}/docs  ·  Ctrl-C stops everything")
