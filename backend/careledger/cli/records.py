"""`careledger records` and `careledger enrollments`: what members' staff do with records.

A clinic uploads FHIR to its own gateway and starts patients' enrollments there; any member
(clinic, insurer, research institute) reads a record at whichever gateway holds it, under a
consent on chain, and checks it against its commitment before showing it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from careledger import errors
from careledger.chain.clients import Ledger
from careledger.cli.common import (
    AsJson,
    DeploymentFile,
    MemberKeyFile,
    RpcUrl,
    connect,
    gateway_of,
    print_json,
    purposes,
    record_id,
)
from careledger.cli.output import console, friendly
from careledger.client import CareLedgerClient
from careledger.codes import Purpose
from careledger.crypto.keyfile import load_private_key

app = typer.Typer(no_args_is_help=True, help="Records: upload FHIR (clinics), read under consent (members).")
enrollments_app = typer.Typer(no_args_is_help=True, help="Enrollments: bind a patient's pseudonym (clinics).")
GatewayUrl = Annotated[
    str | None, typer.Option("--gateway", help="Gateway URL (default: your member's endpoint on chain).")
]
_STORED = re.compile(r"stored as record (0x[0-9a-f]{64}); anchoring (\w+)")
_SINGLE = re.compile(r"(\S+) version (\d+) (created|updated|unchanged); record (0x[0-9a-f]{64}) is (\w+)")


def _own_gateway(ledger: Ledger, client: CareLedgerClient, override: str | None) -> str:
    if override:
        return override.rstrip("/")
    member, _ = ledger.members.key_of(client.address)
    if member is None:
        raise errors.NotFound(f"{client.address} is no key of any member")
    return gateway_of(ledger.members.get_member(member))


@app.command("upload")
@friendly
def upload(
    file: Annotated[
        Path, typer.Argument(help="A FHIR R4 resource or transaction Bundle (JSON).", dir_okay=False)
    ],
    key_file: MemberKeyFile,
    gateway: GatewayUrl = None,
    wait: Annotated[bool, typer.Option(help="Wait until every stored record is anchored on chain.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for anchoring.")] = 60.0,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Send FHIR to your clinic's gateway: validated, encrypted, stored, anchored on chain."""
    try:
        document = json.loads(file.read_bytes())
    except OSError as exc:
        raise errors.InvalidRequest(f"cannot read {file}: {exc.strerror}") from None
    except ValueError as exc:
        raise errors.InvalidRequest(f"{file} is not JSON: {exc}") from None
    ledger = connect(rpc_url, deployment_file)
    client = CareLedgerClient(load_private_key(key_file), ledger)
    answer = client.post_fhir(_own_gateway(ledger, client, gateway), document)
    if answer.get("resourceType") == "Bundle":
        rows = [_entry(e.get("response", {})) for e in answer.get("entry", [])]
    else:
        rows = [_single(answer)]
    if wait and any(r["anchoring"] not in ("anchored", "unchanged") for r in rows):
        _wait_anchored(ledger, [r for r in rows if r["recordId"]], timeout, quiet=as_json)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{file.name}: {len(rows)} resource(s)", header_style="bold")
    for column in ("resource", "result", "record id", "anchoring"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["location"], r["status"], r["recordId"] or "-", r["anchoring"])
    console.print(table)


def _entry(response: dict[str, Any]) -> dict[str, Any]:
    notes = " ".join(i.get("diagnostics", "") for i in response.get("outcome", {}).get("issue", []))
    stored = _STORED.search(notes)
    return {
        "location": response.get("location", ""),
        "status": response.get("status", ""),
        "recordId": stored.group(1) if stored else None,
        "anchoring": stored.group(2) if stored else "unchanged",
    }


def _single(outcome: dict[str, Any]) -> dict[str, Any]:
    """The gateway's OperationOutcome for one resource: 'T/id version N created; record 0x… is pending'."""
    text = " ".join(i.get("diagnostics", "") for i in outcome.get("issue", []))
    said = _SINGLE.match(text)
    if said is None:
        raise errors.GatewayRefused(200, f"unexpected answer: {text[:200]}")
    resource, version, what, rid, anchoring = said.groups()
    return {
        "location": f"{resource}/_history/{version}",
        "status": {"created": "201 Created", "updated": "200 OK", "unchanged": "200 OK"}[what],
        "recordId": None if what == "unchanged" else rid,
        "anchoring": "unchanged" if what == "unchanged" else anchoring,
    }


def _wait_anchored(ledger: Ledger, rows: list[dict[str, Any]], timeout: float, *, quiet: bool) -> None:
    waiting = {r["recordId"]: r for r in rows if r["anchoring"] != "anchored"}
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("anchoring on chain"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet,
    ) as progress:
        task = progress.add_task("anchoring", total=len(rows), completed=len(rows) - len(waiting))
        while waiting:
            for rid in list(waiting):
                if ledger.records.anchored(record_id(rid)) is not None:
                    waiting.pop(rid)["anchoring"] = "anchored"
                    progress.advance(task)
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise errors.ChainError(
                    f"{len(waiting)} record(s) not anchored after {timeout:g} s; "
                    "they stay queued at the gateway (see its /ready)"
                )
            time.sleep(0.2)


@app.command("get")
@friendly
def get(
    record: Annotated[str, typer.Argument(help="The record id (0x…), as anchored on chain.")],
    purpose: Annotated[str, typer.Option(help="Purpose of use, HL7 ActReason: TREAT, HPAYMT, HRESCH, BTG…")],
    key_file: MemberKeyFile,
    out: Annotated[
        Path | None, typer.Option(help="Write the FHIR JSON, byte for byte, to this file.")
    ] = None,
    break_glass: Annotated[
        str | None, typer.Option(help="Emergency access: the reason (needs --purpose BTG, logged on chain).")
    ] = None,
    acting_user: Annotated[str | None, typer.Option(help="Who reads, for break-glass access.")] = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Read a record under a consent on chain; the answer is checked against its commitment."""
    (why,) = purposes([purpose])
    if (break_glass is not None) != (why is Purpose.BTG):
        raise errors.InvalidRequest("break-glass access is --purpose BTG with --break-glass REASON, together")
    ledger = connect(rpc_url, deployment_file)
    client = CareLedgerClient(load_private_key(key_file), ledger)
    got = client.read_record(record_id(record), why, break_glass_reason=break_glass, acting_user=acting_user)
    custodian = ledger.members.get_member(got.custodian).name
    basis = (
        "break-glass" if got.break_glass else f"consent 0x{got.consent_id.hex()}" if got.consent_id else "-"
    )
    if out is not None:
        out.write_bytes(got.content)
    if as_json:
        print_json(
            {
                "recordId": "0x" + got.record_id.hex(),
                "custodian": got.custodian,
                "patient": got.patient,
                "basis": basis,
                "verified": True,
                "resource": got.resource,
            }
        )
        return
    resource = f"{got.resource.get('resourceType')} {got.resource.get('id')}"
    console.print(f"{resource} from {custodian}, verified against its commitment on chain")
    console.print(f"basis: {basis}; this read is logged on chain in AccessLog")
    if out is not None:
        console.print(f"written to {out}")
    else:
        console.print_json(got.content.decode())


@enrollments_app.command("start")
@friendly
def start(
    patient: Annotated[str, typer.Argument(help="The patient's pseudonym at your clinic (an address).")],
    reference: Annotated[str, typer.Argument(help="Your EHR's reference for the patient: Patient/<id>.")],
    key_file: MemberKeyFile,
    out: Annotated[Path, typer.Option(help="Where to write the offer the patient signs.")] = Path(
        "offer.json"
    ),
    gateway: GatewayUrl = None,
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    as_json: AsJson = False,
) -> None:
    """Bind a patient's pseudonym to your EHR's patient; the patient signs the offer to finish."""
    ledger = connect(rpc_url, deployment_file)
    client = CareLedgerClient(load_private_key(key_file), ledger)
    offer = client.start_enrollment(_own_gateway(ledger, client, gateway), patient, reference)
    out.write_text(json.dumps(offer["typedData"], indent=2))
    if as_json:
        print_json({"offer": str(out), "status": offer["status"], "patient": patient})
        return
    console.print(f"enrollment offer for {patient} written to {out}")
    console.print(f"the patient finishes it with: careledger patient enroll {out}")
