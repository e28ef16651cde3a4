"""`careledger council`: the council's governance of membership — propose, vote, members."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from careledger.chain.clients import Ledger, Member
from careledger.cli.common import (
    AsJson,
    DeploymentFile,
    MemberKeyFile,
    RpcUrl,
    connect,
    find_member,
    print_json,
)
from careledger.cli.output import console, friendly
from careledger.codes import Role
from careledger.crypto.keyfile import load_private_key

app = typer.Typer(no_args_is_help=True, help="Council: admit, suspend and reinstate members by vote.")


class Action(StrEnum):
    admit = "admit"
    suspend = "suspend"
    reinstate = "reinstate"


class RoleName(StrEnum):
    clinic = "clinic"
    insurer = "insurer"
    research = "research"
    auditor = "auditor"


@app.command("propose")
@friendly
def propose(
    action: Annotated[Action, typer.Argument(help="What to do to the member.")],
    member: Annotated[str, typer.Argument(help="The member's address (or, but for admit, its name).")],
    key_file: MemberKeyFile,
    role: Annotated[RoleName | None, typer.Option(help="The new member's role (admit only).")] = None,
    name: Annotated[str | None, typer.Option(help="The new member's name (admit only).")] = None,
    endpoint: Annotated[str, typer.Option(help="The new member's gateway URL (admit; clinics).")] = "",
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Propose a membership change as a council seat; the proposer's approval counts as the first vote."""
    ledger = connect(rpc_url, deployment_file)
    seat = ledger.sender(load_private_key(key_file))
    if action is Action.admit:
        if role is None or not name:
            raise typer.BadParameter("admitting a member needs --role and --name")
        proposal = ledger.members.propose_admit(seat, member, Role[role.name.upper()], name, endpoint)
        subject = name
    else:
        target = find_member(ledger, member)
        call = (
            ledger.members.propose_suspend if action is Action.suspend else ledger.members.propose_reinstate
        )
        proposal = call(seat, target.address)
        subject = target.name
    _report(ledger, proposal, f"{action.value} {subject}", as_json)


@app.command("vote")
@friendly
def vote(
    proposal: Annotated[int, typer.Argument(help="The proposal's number.", min=0)],
    key_file: MemberKeyFile,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Approve a proposal as a council seat; it takes effect when the threshold is reached."""
    ledger = connect(rpc_url, deployment_file)
    ledger.members.vote(ledger.sender(load_private_key(key_file)), proposal)
    p = ledger.members.proposal(proposal)
    _report(ledger, proposal, f"{_ACTIONS.get(p.action, 'change')} {p.name or p.subject}", as_json)


@app.command("members")
@friendly
def members(rpc_url: RpcUrl = None, deployment_file: DeploymentFile = None, as_json: AsJson = False) -> None:
    """The members as MemberRegistry holds them, and the council."""
    ledger = connect(rpc_url, deployment_file)
    listed = ledger.members.members()
    if as_json:
        print_json(
            {
                "members": [_member_json(m) for m in listed],
                "council": ledger.members.seats(),
                "threshold": ledger.members.threshold(),
            }
        )
        return
    table = Table(title="Members", header_style="bold")
    for column in ("name", "role", "status", "address", "gateway"):
        table.add_column(column)
    for m in listed:
        table.add_row(m.name, m.role.name.lower(), m.status.name.lower(), m.address, m.endpoint or "-")
    console.print(table)
    seats = ledger.members.seats()
    console.print(f"council: {len(seats)} seats, {ledger.members.threshold()} votes decide")


_ACTIONS = {0: "admit", 1: "suspend", 2: "reinstate", 3: "add seat", 4: "remove seat", 5: "threshold"}


def _member_json(m: Member) -> dict[str, object]:
    return {
        "address": m.address,
        "name": m.name,
        "role": m.role.name.lower(),
        "status": m.status.name.lower(),
        "endpoint": m.endpoint,
        "relayer": m.relayer,
    }


def _report(ledger: Ledger, proposal: int, what: str, as_json: bool) -> None:
    p = ledger.members.proposal(proposal)
    votes, needed = ledger.members.approvals(proposal), ledger.members.threshold()
    if as_json:
        print_json({"proposal": proposal, "what": what, "approvals": votes, "executed": p.executed})
        return
    state = "done" if p.executed else f"{needed - votes} more vote(s) needed"
    console.print(f"proposal {proposal}: {what} — {votes} of {needed} approvals, {state}")
