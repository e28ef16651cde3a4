"""`careledger deploy`: one-shot steps that bring a network up, each safe to run again.

`contracts` deploys the four contracts once and writes the deployment file; `admit` has the
council admit a member; `relayer` registers a gateway's relayer key for its member. The
compose files run them as one-shot services: a step that finds its work done says so and
exits 0, so a restarted stack does not deploy twice.

Keys are named by KEY: a file holding a hex private key (as `careledger gateway init-keys`
and deploy/besu/generate write them), or `anvil:N` for anvil's published dev account N,
accepted on chain 31337 only.
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account import Account
from eth_utils.address import is_address, to_checksum_address

from careledger.chain.clients import Ledger, connect
from careledger.chain.compile import compile_contracts
from careledger.chain.deployment import Deployment, deploy
from careledger.chain.devnet import dev_key
from careledger.chain.reverts import RevertDecoder
from careledger.chain.sender import Sender
from careledger.cli.output import console, friendly
from careledger.codes import MemberStatus, Role
from careledger.crypto.keyfile import load_private_key
from careledger.errors import ChainUnavailable, ConfigurationError

ANVIL_CHAIN_ID = 31337

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Deploy the contracts and bootstrap members (one-shot steps).",
)

RpcOption = Annotated[str, typer.Option("--rpc-url", envvar="CARELEDGER_RPC_URL", help="JSON-RPC URL.")]
DeploymentOption = Annotated[
    Path, typer.Option(envvar="CARELEDGER_DEPLOYMENT_FILE", help="The deployment file.")
]
WaitOption = Annotated[float, typer.Option(help="Seconds to wait for the node to answer.")]


class RoleName(StrEnum):
    CLINIC = "CLINIC"
    INSURER = "INSURER"
    RESEARCH = "RESEARCH"
    AUDITOR = "AUDITOR"


@app.callback()
def _group() -> None:
    """Deploy the contracts and bootstrap members (one-shot steps)."""


def resolve_key(ref: str, chain_id: int) -> bytes:
    """The private key a KEY names: `anvil:N` (chain 31337 only) or a key file."""
    if ref.startswith("anvil:"):
        if chain_id != ANVIL_CHAIN_ID:
            raise ConfigurationError(f"{ref}: anvil dev keys are public; refused on chain {chain_id}")
        try:
            return dev_key(int(ref.removeprefix("anvil:")))
        except ValueError:
            raise ConfigurationError(f"{ref!r} is not anvil:<account number>") from None
    return load_private_key(Path(ref))


def address_of(ref: str, chain_id: int) -> str:
    """An address given as itself or as a KEY."""
    if is_address(ref):
        return to_checksum_address(ref)
    return str(Account.from_key(resolve_key(ref, chain_id)).address)


def _connect(rpc_url: str, wait: float) -> Any:
    """A web3 connection, waiting up to `wait` s for the node to answer (it may be starting)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return connect(rpc_url, timeout=10.0)
        except ChainUnavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


@app.command("contracts")
@friendly
def contracts(
    deployer_key: Annotated[str, typer.Option(help="KEY of the deployer.")],
    council: Annotated[list[str], typer.Option("--council", help="A council seat: address or KEY (repeat).")],
    threshold: Annotated[int, typer.Option(help="Council approvals a proposal needs.")],
    rpc_url: RpcOption = "http://127.0.0.1:8545",
    deployment_file: DeploymentOption = Path(".careledger/deployment.json"),
    voting_period: Annotated[int, typer.Option(help="Seconds a proposal stays open.")] = 7 * 24 * 3600,
    max_check_lag: Annotated[int, typer.Option(help="AccessLog's bound on a consent check's age.")] = 64,
    replace_stale: Annotated[
        bool, typer.Option(help="Deploy anew when the file names contracts this chain lacks (dev chains).")
    ] = False,
    wait: WaitOption = 60.0,
) -> None:
    """Deploy the four contracts and write the deployment file (once: a valid file is kept)."""
    w3 = _connect(rpc_url, wait)
    chain_id = int(w3.eth.chain_id)
    if deployment_file.exists():
        existing = Deployment.load(deployment_file)
        try:
            existing.check_chain(w3)
        except ConfigurationError as exc:
            if not replace_stale:
                raise ConfigurationError(f"{deployment_file} does not match this chain: {exc}") from None
            console.print(f"{deployment_file} is stale ({exc}); deploying anew")
        else:
            console.print(f"already deployed: MemberRegistry at {existing.address('MemberRegistry')}")
            return
    artifacts = compile_contracts()
    decoder = RevertDecoder(a.abi for a in artifacts.values())
    deployer = Sender(w3, Account.from_key(resolve_key(deployer_key, chain_id)), decoder)
    seats = [address_of(seat, chain_id) for seat in council]
    deployment = deploy(
        w3,
        deployer,
        council=seats,
        threshold=threshold,
        voting_period=voting_period,
        max_check_lag=max_check_lag,
        artifacts=artifacts,
    )
    deployment.save(deployment_file)
    console.print(f"deployed on chain {chain_id}: MemberRegistry at {deployment.address('MemberRegistry')}")
    console.print(f"deployment file: {deployment_file}")


@app.command("admit")
@friendly
def admit(
    council_key: Annotated[
        list[str], typer.Option("--council-key", help="KEY of a council seat (repeat, threshold many).")
    ],
    member: Annotated[str, typer.Option(help="The member: address or KEY.")],
    role: Annotated[RoleName, typer.Option(help="The member's role.", case_sensitive=False)],
    name: Annotated[str, typer.Option(help="Display name.")],
    endpoint: Annotated[str, typer.Option(help="Gateway URL (CLINIC members).")] = "",
    rpc_url: RpcOption = "http://127.0.0.1:8545",
    deployment_file: DeploymentOption = Path(".careledger/deployment.json"),
    wait: WaitOption = 60.0,
) -> None:
    """Have the council admit a member (proposed by the first seat, approved by the next)."""
    wanted = Role[role.value]
    _connect(rpc_url, wait)
    ledger = Ledger.connect(rpc_url, Deployment.load(deployment_file))
    chain_id = ledger.deployment.chain_id
    address = address_of(member, chain_id)
    current = ledger.members.get_member(address)
    if current.status is not MemberStatus.NONE:
        if current.role is not wanted:
            raise ConfigurationError(f"{address} is already a {current.role.name} member, not {wanted.name}")
        console.print(f"already a member: {address} ({current.status.name.lower()})")
        return
    seats = [ledger.sender(resolve_key(ref, chain_id)) for ref in council_key]
    proposal = ledger.members.propose_admit(seats[0], address, wanted, name, endpoint)
    for seat in seats[1:]:
        if ledger.members.vote(seat, proposal):
            console.print(f"admitted {address} as {wanted.name} ({name}); proposal {proposal}")
            return
    raise ConfigurationError(
        f"proposal {proposal} to admit {address} has {ledger.members.approvals(proposal)} of "
        f"{ledger.members.threshold()} approvals: give more --council-key"
    )


@app.command("relayer")
@friendly
def relayer(
    member_key: Annotated[str, typer.Option(help="KEY of the member's admin account.")],
    relayer_key: Annotated[str, typer.Option(help="The relayer: address or KEY (e.g. its key file).")],
    rpc_url: RpcOption = "http://127.0.0.1:8545",
    deployment_file: DeploymentOption = Path(".careledger/deployment.json"),
    wait: WaitOption = 60.0,
) -> None:
    """Register a gateway's relayer key for its member (from the member's admin key)."""
    _connect(rpc_url, wait)
    ledger = Ledger.connect(rpc_url, Deployment.load(deployment_file))
    chain_id = ledger.deployment.chain_id
    admin = ledger.sender(resolve_key(member_key, chain_id))
    address = address_of(relayer_key, chain_id)
    current = ledger.members.get_member(admin.address)
    if current.status is MemberStatus.NONE:
        raise ConfigurationError(f"{admin.address} is not a member; admit it first")
    if current.relayer is not None and to_checksum_address(current.relayer) == address:
        console.print(f"already set: {admin.address} relays through {address}")
        return
    info = ledger.members.set_relayer(admin, address)
    console.print(f"{admin.address} relays through {address} (tx {info.tx_hash})")


if __name__ == "__main__":
    app()
