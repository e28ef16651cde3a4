"""`careledger patient`: a patient's own tools — keys, enrollment, consents, accounting, erasure.

Everything the patient signs is signed here, with the pseudonym the keystore derives for the
custodian concerned; gateways relay what the patient signed, they never hold the keys.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from careledger import errors
from careledger.chain.clients import Ledger, Member
from careledger.chain.eip712 import Erasure, Grant, Revocation
from careledger.cli.common import (
    AsJson,
    DeploymentFile,
    KeystoreFile,
    PassphraseFile,
    RpcUrl,
    categories,
    connect,
    gateway_of,
    passphrase,
    pick_member,
    print_json,
    purposes,
    record_id,
    unlock,
)
from careledger.cli.output import console, friendly
from careledger.client import CareLedgerClient
from careledger.codes import Purpose, mask
from careledger.crypto.keystore import PatientKeystore

app = typer.Typer(no_args_is_help=True, help="Patient: your keys, enrollments, consents, history, erasure.")
consent_app = typer.Typer(no_args_is_help=True, help="Grant, revoke and list your consents.")
app.add_typer(consent_app, name="consent")

Custodian = Annotated[str, typer.Option("--custodian", help="The custodian (clinic): its name or address.")]
SIGNATURE_VALIDITY_S = 600


def _now() -> int:
    return int(time.time())


def _nonce() -> int:
    return secrets.randbits(128)  # unordered nonces (a bitmap on chain): any unused one will do


class _Session:
    """An unlocked keystore and the chain, for one command."""

    def __init__(
        self, keystore: Path, passphrase_file: Path | None, rpc_url: str | None, deployment: Path | None
    ):
        self.keys = unlock(keystore, passphrase_file)
        self.ledger: Ledger = connect(rpc_url, deployment)
        self.chain_id = self.ledger.deployment.chain_id

    @cached_property
    def members(self) -> list[Member]:
        """MemberRegistry's members, read once per command (one RPC per member)."""
        return self.ledger.members.members()

    def member(self, who: str) -> Member:
        return pick_member(self.members, who)

    def names(self) -> dict[str, str]:
        return {m.address: m.name for m in self.members}

    def client(self, custodian: str, generation: int | None = None) -> CareLedgerClient:
        return CareLedgerClient(self.keys.key(self.chain_id, custodian, generation), self.ledger)

    def pseudonyms(self) -> list[tuple[str, int, str]]:
        """Every (custodian, generation, pseudonym) the keystore knows, oldest first."""
        return [
            (custodian, g, self.keys.pseudonym(self.chain_id, custodian, g))
            for custodian, state in sorted(self.keys.custodians.items())
            for g in state.generations()
        ]


@app.command("keygen")
@friendly
def keygen(
    keystore: KeystoreFile,
    passphrase_file: PassphraseFile = None,
    as_json: AsJson = False,
) -> None:
    """Create your keystore: one secret seed, encrypted with your passphrase. Back it up."""
    created = PatientKeystore.create(keystore, passphrase(passphrase_file, confirm=True))
    if as_json:
        print_json({"keystore": str(created.path)})
        return
    console.print(f"keystore created: {created.path}")
    console.print(
        "Every pseudonym you will use comes from it: back up this file and remember the passphrase."
    )


@app.command("pseudonym")
@friendly
def pseudonym(
    custodian: Annotated[str, typer.Argument(help="The custodian (clinic): its name or address.")],
    keystore: KeystoreFile,
    passphrase_file: PassphraseFile = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Your pseudonym at a custodian: give it to its staff to start your enrollment."""
    session = _Session(keystore, passphrase_file, rpc_url, deployment_file)
    member = session.member(custodian)
    session.keys.use(member.address)
    state = session.keys.custodian(member.address)
    generation = state.pending or state.current
    address = session.keys.pseudonym(session.chain_id, member.address, generation)
    if as_json:
        print_json({"custodian": member.address, "generation": generation, "pseudonym": address})
    else:
        print(address)


@app.command("enroll")
@friendly
def enroll(
    offer: Annotated[
        Path, typer.Argument(help="The offer file the clinic's staff gave you.", dir_okay=False)
    ],
    keystore: KeystoreFile,
    passphrase_file: PassphraseFile = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Sign an enrollment the clinic's staff started for your pseudonym there."""
    try:
        typed = json.loads(offer.read_text())
        message = typed["message"]
        custodian, patient = message["custodian"], message["patient"]
    except (OSError, ValueError, KeyError, TypeError):
        raise errors.InvalidRequest(f"{offer} is not an enrollment offer") from None
    session = _Session(keystore, passphrase_file, rpc_url, deployment_file)
    member = session.member(custodian)
    session.keys.use(member.address)
    pending = session.keys.pending_generation(session.chain_id, member.address, patient)
    generation = pending or session.keys.generation_of(session.chain_id, member.address, patient)
    if generation is None:
        raise errors.InvalidRequest(f"the offer is for {patient}, which is not one of your pseudonyms")
    answer = session.client(member.address, generation).complete_enrollment(gateway_of(member), typed)
    if pending:
        session.keys.promote(member.address, pending)
    if as_json:
        print_json({"custodian": member.address, "pseudonym": patient, "status": answer["status"]})
        return
    console.print(f"enrolled at {member.name} as {patient}: {answer['status']}")


@app.command("records")
@friendly
def records(
    custodian: Custodian,
    keystore: KeystoreFile,
    passphrase_file: PassphraseFile = None,
    resource_type: Annotated[str | None, typer.Option("--type", help="Only this FHIR resource type.")] = None,
    ids: Annotated[bool, typer.Option("--ids", help="Print only the record ids, one per line.")] = False,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """What a custodian keeps about you (under every pseudonym you had there)."""
    session = _Session(keystore, passphrase_file, rpc_url, deployment_file)
    member = session.member(custodian)
    listed = [
        r
        for g in session.keys.custodian(member.address).generations()
        for r in _own_records(session, member.address, g)
        if resource_type is None or r["resourceType"] == resource_type
    ]
    if ids:
        print("\n".join(r["recordId"] for r in listed))
        return
    if as_json:
        print_json(listed)
        return
    table = Table(title=f"Your records at {member.name}", header_style="bold")
    for column in ("resource", "version", "category", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("record id", no_wrap=True, min_width=66)
    for r in listed:
        table.add_row(
            f"{r['resourceType']}/{r['resourceId']}",
            str(r["version"]),
            r["category"].lower(),
            r["status"],
            r["recordId"],
        )
    console.print(table)


def _own_records(session: _Session, custodian: str, generation: int) -> list[dict[str, Any]]:
    client = session.client(custodian, generation)
    try:
        return client.records(gateway_of(session.member(custodian)))
    except errors.GatewayRefused as exc:
        if exc.status == 404:  # a generation never enrolled there
            return []
        raise


@consent_app.command("grant")
@friendly
def grant(
    custodian: Custodian,
    grantee: Annotated[str, typer.Option(help="Who may read: a member's name or address.")],
    category: Annotated[list[str], typer.Option(help="A data category (repeat for several), e.g. claims.")],
    purpose: Annotated[list[str], typer.Option(help="A purpose of use (repeat for several), e.g. HPAYMT.")],
    keystore: KeystoreFile,
    days: Annotated[int, typer.Option(help="How long the consent lasts, in days.", min=1, max=36500)] = 365,
    passphrase_file: PassphraseFile = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Let a member read some categories of your records at a custodian, for some purposes."""
    wanted_purposes = purposes(purpose)
    if Purpose.BTG in wanted_purposes:
        raise errors.InvalidRequest("break-glass (BTG) is never granted: it is an emergency, logged on chain")
    wanted_categories = categories(category)
    session = _Session(keystore, passphrase_file, rpc_url, deployment_file)
    holder, reader = session.member(custodian), session.member(grantee)
    session.keys.use(holder.address)
    me = session.client(holder.address)
    now = _now()
    message = Grant(
        me.address,
        reader.address,
        mask(wanted_categories),
        mask(wanted_purposes),
        now - 60,
        now + days * 86400,
        _nonce(),
        now + SIGNATURE_VALIDITY_S,
    )
    job = me.grant(gateway_of(holder), message)
    result = job.get("result") or {}
    if as_json:
        print_json(
            {"status": job["status"], "consentId": result.get("consentId"), "txHash": result.get("txHash")}
        )
        return
    what = ", ".join(c.name.lower() for c in wanted_categories)
    why = ", ".join(p.name for p in wanted_purposes)
    console.print(
        f"consent {job['status']}: {reader.name} may read your {what} at {holder.name} for {why}, {days} days"
    )
    if result.get("consentId"):
        console.print(f"consent id {result['consentId']}")


def _consents(session: _Session) -> list[dict[str, Any]]:
    listed = []
    for custodian, generation, address in session.pseudonyms():
        member = session.member(custodian)
        for c in session.client(custodian, generation).consents(gateway_of(member)):
            listed.append(
                {**c, "custodian": member.address, "custodianName": member.name, "patient": address}
            )
    return listed


@consent_app.command("list")
@friendly
def list_consents(
    keystore: KeystoreFile,
    passphrase_file: PassphraseFile = None,
    grantee: Annotated[str | None, typer.Option(help="Only the consents of this member.")] = None,
    active: Annotated[bool, typer.Option(help="Only the consents in force now.")] = False,
    ids: Annotated[bool, typer.Option("--ids", help="Print only the consent ids, one per line.")] = False,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Your consents under every pseudonym, as the chain holds them."""
    session = _Session(keystore, passphrase_file, rpc_url, deployment_file)
    listed = _consents(session)
    if grantee is not None:
        reader = session.member(grantee).address
        listed = [c for c in listed if c["grantee"] == reader]
    if active:
        listed = [c for c in listed if c["status"] == "active"]
    if ids:
        print("\n".join(c["consentId"] for c in listed))
        return
    if as_json:
        print_json(listed)
        return
    names = session.names()
    table = Table(title="Your consents", header_style="bold")
    for column in ("at", "who may read", "categories", "purposes", "until", "status"):
        table.add_column(column)
    table.add_column("consent id", no_wrap=True, min_width=66)
    for c in listed:
        table.add_row(
            c["custodianName"],
            names.get(c["grantee"], c["grantee"]),
            ", ".join(x.lower() for x in c["categories"]),
            ", ".join(c["purposes"]),
            datetime.fromtimestamp(c["validUntil"], UTC).strftime("%Y-%m-%d"),
            c["status"],
            c["consentId"],
        )
    console.print(table)


@consent_app.command("revoke")
@friendly
def revoke(
    consent_id: Annotated[str, typer.Argument(help="The consent id (0x…), from `consent list`.")],
    keystore: KeystoreFile,
    passphrase_file: PassphraseFile = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Withdraw a consent: relayed at once; no read is allowed after the block that records it."""
    wanted = "0x" + record_id(consent_id).hex()
    session = _Session(keystore, passphrase_file, rpc_url, deployment_file)
    consent = next((c for c in _consents(session) if c["consentId"] == wanted), None)
    if consent is None:
        raise errors.NotFound(f"{wanted} is not one of your consents")
    custodian = consent["custodian"]
    generation = session.keys.generation_of(session.chain_id, custodian, consent["patient"])
    me = session.client(custodian, generation)
    revocation = Revocation(me.address, bytes.fromhex(wanted[2:]), _nonce(), _now() + SIGNATURE_VALIDITY_S)
    job = me.revoke(gateway_of(session.member(custodian)), revocation)
    if as_json:
        print_json(
            {"consentId": wanted, "status": job["status"], "txHash": (job.get("result") or {}).get("txHash")}
        )
        return
    console.print(f"consent {wanted} revoked: {job['status']}")


@app.command("history")
@friendly
def history(
    keystore: KeystoreFile,
    passphrase_file: PassphraseFile = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Who saw your records, when, why and on what basis — across all your pseudonyms, from the chain."""
    session = _Session(keystore, passphrase_file, rpc_url, deployment_file)
    seen: dict[str, dict[str, Any]] = {}
    for custodian, generation, _address in session.pseudonyms():
        gateway = gateway_of(session.member(custodian))
        for d in session.client(custodian, generation).disclosures(gateway):
            seen[f"{d['txHash']}/{d['recordId']}/{d['when']}"] = d
    listed = sorted(seen.values(), key=lambda d: (d["when"], d["recordId"]))
    if as_json:
        print_json(listed)
        return
    names = session.names()
    table = Table(title="Who saw your records", header_style="bold")
    for column in ("when (UTC)", "who", "held by", "category", "purpose", "basis"):
        table.add_column(column)
    for d in listed:
        who = names.get(d["member"] or "", d["requester"])
        basis = (
            "BREAK-GLASS" if d["breakGlass"] else f"consent {d['consentId'][:10]}…" if d["consentId"] else "-"
        )
        table.add_row(
            datetime.fromtimestamp(d["when"], UTC).strftime("%Y-%m-%d %H:%M"),
            who,
            names.get(d["custodian"], d["custodian"]),
            d["category"].lower(),
            d["purpose"],
            basis,
        )
    console.print(table)
    console.print(f"{len(listed)} disclosure(s)")


@app.command("erase")
@friendly
def erase(
    record: Annotated[str, typer.Argument(help="The record id (0x…), from `patient records`.")],
    keystore: KeystoreFile,
    passphrase_file: PassphraseFile = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Have a record erased: every version's key destroyed at its custodian, the erasure marked on chain."""
    rid = record_id(record)
    session = _Session(keystore, passphrase_file, rpc_url, deployment_file)
    anchored = session.ledger.records.anchored(rid)
    if anchored is None:
        raise errors.NotFound(f"0x{rid.hex()} is not anchored on chain")
    generation = session.keys.generation_of(session.chain_id, anchored.custodian, anchored.patient)
    if generation is None:
        raise errors.Forbidden(f"0x{rid.hex()} is not one of your records")
    member = session.member(anchored.custodian)
    me = session.client(member.address, generation)
    answer = me.erase(gateway_of(member), Erasure(me.address, rid, _nonce(), _now() + SIGNATURE_VALIDITY_S))
    if as_json:
        print_json(answer)
        return
    console.print(f"erased at {member.name}: {len(answer['erased'])} version(s), keys destroyed")
    if answer["disclosedTo"]:
        names = session.names()
        told = ", ".join(names.get(a, a) for a in answer["disclosedTo"])
        console.print(f"it had been disclosed to: {told} (ask them to erase their copies)")


@app.command("rotate")
@friendly
def rotate(
    custodian: Annotated[str, typer.Argument(help="The custodian (clinic): its name or address.")],
    keystore: KeystoreFile,
    passphrase_file: PassphraseFile = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Start a new pseudonym at a custodian (a lost device, a leaked key); re-enroll to switch to it.

    The old pseudonym stays derivable from your seed: `history` and `records` still cover it.
    New records go to the new pseudonym once the clinic's staff re-enroll you with it.
    """
    session = _Session(keystore, passphrase_file, rpc_url, deployment_file)
    member = session.member(custodian)
    old = session.keys.pseudonym(session.chain_id, member.address)
    generation = session.keys.rotate(member.address)
    new = session.keys.pseudonym(session.chain_id, member.address, generation)
    if as_json:
        print_json({"custodian": member.address, "old": old, "new": new, "generation": generation})
        return
    console.print(f"new pseudonym at {member.name}: {new} (was {old})")
    console.print("Ask its staff to enroll the new pseudonym, then run `careledger patient enroll OFFER`.")
