"""`careledger allowlist`: keep Besu validators' account allowlists equal to MemberRegistry's."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from careledger import logs
from careledger.chain.allowlist import AllowlistSync, NodeSync, PermNode, normalise, sync_once
from careledger.chain.clients import Ledger
from careledger.chain.deployment import Deployment
from careledger.cli.output import console, err_console, friendly

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Besu account allowlists backed by MemberRegistry."
)


@app.callback()
def _group() -> None:
    """Besu account allowlists backed by MemberRegistry."""


@app.command("sync")
@friendly
def sync(
    node: Annotated[
        list[str],
        typer.Option("--node", help="A Besu node's JSON-RPC URL with the PERM api enabled (repeat)."),
    ],
    rpc_url: Annotated[
        str, typer.Option("--rpc-url", envvar="CARELEDGER_RPC_URL", help="Where to read MemberRegistry.")
    ] = "http://127.0.0.1:8545",
    deployment_file: Annotated[
        Path, typer.Option(envvar="CARELEDGER_DEPLOYMENT_FILE", help="The deployment file.")
    ] = Path(".careledger/deployment.json"),
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", help="An account to allow besides the members' (repeat), e.g. the deployer."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit (1 if a node failed).")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between rounds when not --once.")] = 5.0,
) -> None:
    """Add the accounts MemberRegistry allows to each node's allowlist and remove the others."""
    kept = frozenset(normalise(keep or []))
    ledger = Ledger.connect(rpc_url, Deployment.load(deployment_file))
    nodes = [PermNode(url) for url in node]
    try:
        if once:
            results = sync_once(ledger.members, nodes, kept)
            _report(results)
            if any(r.error for r in results):
                raise typer.Exit(1)
            return
        logs.configure()
        service = AllowlistSync(ledger.members, nodes, kept, interval_s=interval)
        signal.signal(signal.SIGTERM, lambda *_: service.stop.set())
        console.print(f"syncing {len(nodes)} node(s) every {interval:g} s; Ctrl-C stops")
        try:
            service.run()
        except KeyboardInterrupt:
            service.stop.set()
    finally:
        for n in nodes:
            n.close()


def _report(results: list[NodeSync]) -> None:
    for r in results:
        if r.error:
            err_console.print(f"[red]{r.url}: {r.error}[/]", highlight=False, soft_wrap=True)
        elif r.changed:
            console.print(f"{r.url}: added {list(r.added)}, removed {list(r.removed)}", highlight=False)
        else:
            console.print(f"{r.url}: in sync", highlight=False)


if __name__ == "__main__":
    app()
