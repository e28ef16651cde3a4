"""Reports built from an `AuditReport`: a self-contained HTML page for a compliance officer,
`audit.json`, and each patient's accounting of disclosures (HIPAA 164.528) as JSON and as a
FHIR R4 Bundle of AuditEvents shaped after IHE BALP.

Pure functions over the model: nothing here reads the chain. Addresses are compared
case-insensitively (the model may hold checksummed or lower-case hex).
"""

from __future__ import annotations

import html
import json
import math
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

from careledger.audit.model import AuditReport, DisclosureState, Finding, MemberState, Severity
from careledger.codes import Category, MemberStatus, Purpose, Role

MAX_ROWS = 500
"""Rows shown per HTML table; the rest are counted in a note (all of them are in audit.json)."""

# --- shared lookups -------------------------------------------------------------------------


def _key(address: str | None) -> str:
    return (address or "").lower()


def _code_name(codes: type[IntEnum], value: int | None) -> str:
    if value is None:
        return "unknown"
    try:
        return codes(value).name
    except ValueError:
        return f"unknown({value})"


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _Index:
    """Per-member counts and names, computed once per report."""

    names: dict[str, str]
    endpoints: dict[str, str]
    anchored: Counter[str]
    received: Counter[str]
    granted: Counter[str]
    revoked: Counter[str]

    @classmethod
    def of(cls, report: AuditReport) -> _Index:
        consents = report.consents.values()
        return cls(
            names={_key(m.address): m.name for m in report.members.values()},
            endpoints={_key(m.address): m.endpoint for m in report.members.values() if m.endpoint},
            anchored=Counter(_key(r.custodian) for r in report.records.values()),
            received=Counter(_key(d.member or d.requester) for d in report.disclosures),
            granted=Counter(_key(c.grantee) for c in consents),
            revoked=Counter(_key(c.grantee) for c in consents if c.revoked_block is not None),
        )

    def name(self, address: str | None) -> str | None:
        return self.names.get(_key(address))


def _custodian_of(report: AuditReport, d: DisclosureState) -> str | None:
    record = report.records.get(d.record_id)
    return d.custodian or (record.custodian if record else None)


def _category_of(report: AuditReport, d: DisclosureState) -> int | None:
    record = report.records.get(d.record_id)
    return d.category if d.category is not None else (record.category if record else None)


def _patient_of(report: AuditReport, d: DisclosureState) -> str | None:
    record = report.records.get(d.record_id)
    return d.patient or (record.patient if record else None)


def _disclosures_of(report: AuditReport, patient: str) -> list[DisclosureState]:
    """Every disclosure of the patient's records, oldest first."""
    if not patient:
        return []
    found = [d for d in report.disclosures if _key(_patient_of(report, d)) == _key(patient)]
    return sorted(found, key=lambda d: (d.block, d.tx_hash, d.record_id))


# --- files ----------------------------------------------------------------------------------


def write_reports(report: AuditReport, directory: Path) -> dict[str, Path]:
    """Write `audit.json` and `audit.html` into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "audit.json", "html": directory / "audit.html"}
    paths["json"].write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    paths["html"].write_text(render_html(report), encoding="utf-8")
    return paths


# --- accounting of disclosures: JSON --------------------------------------------------------


def accounting_json(report: AuditReport, patient: str) -> dict[str, Any]:
    """The accounting of disclosures (HIPAA 164.528) of one pseudonym's records, oldest first.

    `recorded` is the logging block's time (null when the model has no timestamp; `block`
    is always there). A disclosure is `breakGlass` with the reason's hash, or names the
    consent that permitted it.
    """
    index = _Index.of(report)
    entries = [_accounting_entry(report, index, d) for d in _disclosures_of(report, patient)]
    return {
        "patient": patient,
        "chainId": report.chain_id,
        "fromBlock": report.from_block,
        "toBlock": report.to_block,
        "total": len(entries),
        "disclosures": entries,
    }


def _accounting_entry(report: AuditReport, index: _Index, d: DisclosureState) -> dict[str, Any]:
    custodian = _custodian_of(report, d)
    return {
        "recorded": _iso(d.timestamp) if d.timestamp is not None else None,
        "block": d.block,
        "recordId": d.record_id,
        "category": _code_name(Category, _category_of(report, d)).lower(),
        "custodian": custodian,
        "custodianName": index.name(custodian),
        "requester": d.requester,
        "member": d.member,
        "memberName": index.name(d.member),
        "purpose": _code_name(Purpose, d.purpose),
        "purposeDisplay": _ACT_REASON_DISPLAY.get(d.purpose),
        "breakGlass": d.break_glass,
        "consentId": None if d.break_glass else d.basis,
        "reasonHash": d.basis if d.break_glass else None,
        "checkedBlock": d.checked_block,
        "txHash": d.tx_hash,
    }


# --- accounting of disclosures: FHIR R4 AuditEvent (IHE BALP) -------------------------------

MEMBER_SYSTEM = "urn:careledger:member"
"""Identifier system of a member organization; the value is its admin address."""
RECORD_SYSTEM = "urn:careledger:record"
"""Identifier system of an anchored record; the value is its record id (0x hex)."""
TX_SYSTEM = "urn:careledger:tx"
"""Identifier system of a chain transaction; the value is its hash. The chain is `source.site`."""
SIGNER_SYSTEM = "urn:careledger:signer"
"""Identifier system of a request-signing key that acts for no known member."""
CONSENT_POLICY = "urn:careledger:consent:"
"""Prefix of the `agent.policy` URI naming the permitting consent (its id follows)."""

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_SCT = "http://snomed.info/sct"
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
_RESTFUL = "http://hl7.org/fhir/restful-interaction"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_EVENT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:careledger:audit-event")

_ACT_REASON_DISPLAY: dict[int, str] = {
    Purpose.TREAT: "treatment",
    Purpose.ETREAT: "Emergency Treatment",
    Purpose.HPAYMT: "healthcare payment",
    Purpose.HOPERAT: "healthcare operations",
    Purpose.HRESCH: "healthcare research",
    Purpose.PUBHLTH: "public health",
    Purpose.PATRQT: "patient requested",
    Purpose.BTG: "break the glass",
}
"""Displays from the v3-ActReason code system (FHIR R4 terminology)."""


def accounting_fhir(
    report: AuditReport, patient: str, *, patient_reference: str | None = None
) -> dict[str, Any]:
    """The accounting of disclosures as a FHIR R4 `searchset` Bundle, one AuditEvent each.

    Each AuditEvent follows IHE BALP's "Privacy Disclosure at Source" pattern
    (https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source):
    type DCM 110106 Export; subtype iso-21089-lifecycle `disclose` plus restful-interaction
    `read`; action R; outcome 0; purposeOfEvent the v3-ActReason purpose (break-glass adds
    BTG); agents source (DCM 110153, the custodian, also `source.observer`), recipient
    (DCM 110152, the member, requestor, consent in `policy`, the signing key in `altId`),
    custodian (SNOMED 159541003) and, under a consent, the patient as authorizer (SNOMED
    429577009); entities patient (role 1), record (identifier urn:careledger:record, role 4
    Domain Resource, category and basis in `detail`) and the logging transaction.

    AuditEvent has no `identifier` in R4, so the transaction hash is an entity of its own
    whose `what.identifier` (system urn:careledger:tx) holds it, as BALP carries a
    transaction id in `entity[transaction].what.identifier`; `source.site` names the chain
    (CAIP-2 `eip155:<chainId>`). `meta.profile` is not claimed: BALP requires a `network`
    on the recipient agent, and the chain does not say where the data went (a member's
    registered endpoint is where it serves, not where it reads from).
    `recorded` needs every disclosure's block timestamp (`ValueError` otherwise).
    """
    reference = patient_reference or f"Patient/{patient}"
    index = _Index.of(report)
    events = [_audit_event(report, index, d, reference) for d in _disclosures_of(report, patient)]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(events),
        "entry": [
            {"fullUrl": f"urn:uuid:{event['id']}", "resource": event, "search": {"mode": "match"}}
            for event in events
        ],
    }


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _purpose_coding(purpose: int) -> dict[str, str]:
    code = Purpose(purpose)
    return _coding(_ACT_REASON, code.name, _ACT_REASON_DISPLAY[code])


def _purposes(d: DisclosureState) -> list[dict[str, Any]]:
    codes = [d.purpose] + ([Purpose.BTG] if d.break_glass and d.purpose != Purpose.BTG else [])
    return [{"coding": [_purpose_coding(code)]} for code in codes]


def _member_ref(index: _Index, address: str) -> dict[str, Any]:
    ref: dict[str, Any] = {"type": "Organization", "identifier": {"system": MEMBER_SYSTEM, "value": address}}
    name = index.name(address)
    return ref | ({"display": name} if name else {})


def _network(index: _Index, address: str | None) -> dict[str, Any]:
    """The member's gateway endpoint as a URI network address (type 5), when it has one."""
    endpoint = index.endpoints.get(_key(address))
    return {"network": {"address": endpoint, "type": "5"}} if endpoint else {}


def _audit_event(report: AuditReport, index: _Index, d: DisclosureState, patient_ref: str) -> dict[str, Any]:
    if d.timestamp is None:
        raise ValueError(
            f"disclosure in tx {d.tx_hash} has no block timestamp: AuditEvent.recorded needs one"
        )
    custodian = _custodian_of(report, d)
    observer = _member_ref(index, custodian) if custodian else {"display": "custodian unknown"}
    name = f"{report.chain_id}:{d.tx_hash}:{d.request_hash}:{d.record_id}".lower()
    return {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid5(_EVENT_IDS, name)),
        "text": {"status": "generated", "div": _event_narrative(report, index, d)},
        "type": _coding(_DCM, "110106", "Export"),
        "subtype": [
            _coding(_LIFECYCLE, "disclose", "Disclose Record Lifecycle Event"),
            _coding(_RESTFUL, "read", "read"),
        ],
        "action": "R",
        "recorded": _iso(d.timestamp),
        "outcome": "0",
        "purposeOfEvent": _purposes(d),
        "agent": _agents(report, index, d, observer, patient_ref),
        "source": {
            "site": f"eip155:{report.chain_id}",
            "observer": observer,
            "type": [_coding(_SOURCE_TYPE, "4", "Application Server")],
        },
        "entity": [_patient_entity(patient_ref), _record_entity(report, d), _tx_entity(d)],
    }


def _agents(
    report: AuditReport, index: _Index, d: DisclosureState, observer: dict[str, Any], patient_ref: str
) -> list[dict[str, Any]]:
    custodian = _custodian_of(report, d)
    agents = [
        {
            "type": {"coding": [_coding(_DCM, "110153", "Source Role ID")]},
            "who": observer,
            "requestor": False,
        }
        | _network(index, custodian),
        _recipient(index, d),
        {
            "type": {"coding": [_coding(_SCT, "159541003", "Record keeping/library clerk")]},
            "who": observer,
            "requestor": False,
        },
    ]
    if not d.break_glass:
        agents.append(
            {
                "type": {"coding": [_coding(_SCT, "429577009", "Patient advocate")]},
                "who": {"reference": patient_ref},
                "requestor": False,
            }
        )
    return agents


def _recipient(index: _Index, d: DisclosureState) -> dict[str, Any]:
    agent: dict[str, Any] = {"type": {"coding": [_coding(_DCM, "110152", "Destination Role ID")]}}
    if d.member:
        agent["who"] = _member_ref(index, d.member)
        if _key(d.member) != _key(d.requester):
            agent["altId"] = d.requester
    else:
        agent["who"] = {"identifier": {"system": SIGNER_SYSTEM, "value": d.requester}}
    agent["requestor"] = True
    if not d.break_glass:
        agent["policy"] = [CONSENT_POLICY + d.basis]
    agent["purposeOfUse"] = _purposes(d)
    return agent


def _patient_entity(patient_ref: str) -> dict[str, Any]:
    return {
        "what": {"reference": patient_ref},
        "type": _coding(_ENTITY_TYPE, "1", "Person"),
        "role": _coding(_OBJECT_ROLE, "1", "Patient"),
    }


def _record_entity(report: AuditReport, d: DisclosureState) -> dict[str, Any]:
    basis = ("breakGlassReasonHash", d.basis) if d.break_glass else ("consentId", d.basis)
    return {
        "what": {"identifier": {"system": RECORD_SYSTEM, "value": d.record_id}},
        "type": _coding(_ENTITY_TYPE, "2", "System Object"),
        "role": _coding(_OBJECT_ROLE, "4", "Domain Resource"),
        "detail": [
            {"type": "category", "valueString": _code_name(Category, _category_of(report, d)).lower()},
            {"type": basis[0], "valueString": basis[1]},
            {"type": "checkedBlock", "valueString": str(d.checked_block)},
        ],
    }


def _tx_entity(d: DisclosureState) -> dict[str, Any]:
    return {
        "what": {"identifier": {"system": TX_SYSTEM, "value": d.tx_hash}},
        "type": _coding(_ENTITY_TYPE, "2", "System Object"),
        "description": "AccessLog transaction that logged this disclosure",
        "detail": [{"type": "block", "valueString": str(d.block)}],
    }


def _event_narrative(report: AuditReport, index: _Index, d: DisclosureState) -> str:
    custodian = _custodian_of(report, d)
    who = index.name(d.member) or d.member or d.requester
    basis = f"break-glass (reason hash {d.basis})" if d.break_glass else f"consent {d.basis}"
    text = (
        f"{index.name(custodian) or custodian or 'An unknown custodian'} disclosed record {d.record_id}"
        f" ({_code_name(Category, _category_of(report, d)).lower()}) to {who}"
        f" for {_code_name(Purpose, d.purpose)} under {basis}, block {d.block}."
    )
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{html.escape(text)}</p></div>'


# --- HTML -----------------------------------------------------------------------------------

_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}


def render_html(
    report: AuditReport, *, title: str = "CareLedger audit report", generated_at: datetime | None = None
) -> str:
    """One self-contained HTML page (inline CSS, inline SVG, no scripts, no external requests).

    Every value from the report is HTML-escaped; a Content-Security-Policy forbids scripts
    and every fetch, should anything slip through. Tables stop at `MAX_ROWS` rows with a
    note of how many more are in audit.json. `generated_at` defaults to now (UTC); a naive
    datetime is taken as UTC.
    """
    generated = generated_at or datetime.now(UTC)
    generated = generated if generated.tzinfo else generated.replace(tzinfo=UTC)
    index = _Index.of(report)
    body = "".join(
        [
            _header(report, title, generated),
            _summary(report),
            _findings_section(report, index),
            _timeline_section(report),
            _review_section(report, index),
            _members_section(report, index),
            "<footer><p>The complete machine-readable report is <code>audit.json</code>; each patient's"
            " accounting of disclosures is exported on request as JSON and FHIR AuditEvents.</p></footer>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _dash(value: object | None) -> str:
    return '<span class="none">—</span>' if value is None or value == "" else _esc(value)


def _hex(value: str | None) -> str:
    """A long hex value shortened for reading; the full value is its tooltip."""
    if not value:
        return _dash(None)
    short = value if len(value) <= 16 else f"{value[:8]}…{value[-6:]}"
    return f'<code title="{_esc(value)}">{_esc(short)}</code>'


def _block(block: int | None) -> str:
    return _dash(None) if block is None else f"#{block}"


def _member(index: _Index, address: str | None) -> str:
    name = index.name(address)
    return f'<span class="name">{_esc(name)}</span> {_hex(address)}' if name else _hex(address)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _header(report: AuditReport, title: str, generated: datetime) -> str:
    facts = [
        ("Chain id", _esc(report.chain_id)),
        ("Blocks", f"#{report.from_block} &ndash; #{report.to_block}"),
        ("Events replayed", f"{report.events:,}"),
        ("Generated", _esc(generated.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))),
    ]
    items = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    return f'<header><h1>{_esc(title)}</h1><dl class="facts">{items}</dl></header>'


def verdict(report: AuditReport) -> str:
    """The one-line verdict: "No findings" or "N findings, M critical"."""
    if not report.findings:
        return "No findings"
    critical = sum(1 for f in report.findings if f.severity is Severity.CRITICAL)
    return f"{_count(len(report.findings), 'finding')}, {critical:,} critical"


def _summary(report: AuditReport) -> str:
    worst = min((_SEVERITY_RANK[f.severity] for f in report.findings), default=None)
    tone = "ok" if worst is None else list(Severity)[worst].value
    detail = (
        "Every disclosure, anchor, consent and member action replayed kept the network's rules."
        if worst is None
        else "Findings are listed below, most severe first."
    )
    break_glass = sum(1 for d in report.disclosures if d.break_glass)
    tiles = [
        ("Members", len(report.members)),
        ("Consents", len(report.consents)),
        ("Records", len(report.records)),
        ("Disclosures", len(report.disclosures)),
        ("Break-glass", break_glass),
        ("To review", len(report.review_queue)),
    ]
    counts = Counter(f.severity for f in report.findings)
    severities = "".join(
        f'<div class="tile sev-tile-{s.value if counts[s] else "none"}"><dt>{s.value.capitalize()}</dt>'
        f"<dd>{counts[s]:,}</dd></div>"
        for s in Severity
    )
    return (
        f'<section aria-labelledby="verdict"><p id="verdict" class="verdict verdict-{tone}">'
        f"<strong>{_esc(verdict(report))}</strong><span>{detail}</span></p>"
        f'<h2 class="visually-hidden">Summary</h2><dl class="tiles">'
        + "".join(f'<div class="tile"><dt>{k}</dt><dd>{v:,}</dd></div>' for k, v in tiles)
        + f'</dl><dl class="tiles">{severities}</dl></section>'
    )


def _table(
    table_id: str, caption: str, headers: Sequence[str], rows: Sequence[str], *, empty: str, noun: str
) -> str:
    """A table of pre-rendered rows, at most `MAX_ROWS` of them, with a note of the rest.

    An empty table keeps its header and says `empty` in one row, without a caption.
    """
    shown = rows[:MAX_ROWS]
    head = "".join(f'<th scope="col">{h}</th>' for h in headers)
    body = "".join(shown) or f'<tr class="empty"><td colspan="{len(headers)}">{empty}</td></tr>'
    caption = f"<caption>{caption}</caption>" if rows else ""
    more = len(rows) - len(shown)
    note = f'<p class="more">… and {more:,} more {noun}{"s" * (more != 1)}, listed in audit.json.</p>'
    note = note if more else ""
    return (
        f'<div class="scroll"><table id="{table_id}">{caption}'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}"
    )


def _sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(
        findings,
        key=lambda f: (_SEVERITY_RANK[f.severity], f.block is None, f.block or 0, f.code),
    )


def _finding_row(index: _Index, f: Finding) -> str:
    cells = [
        f'<span class="sev sev-{f.severity.value}">{f.severity.value}</span>',
        f"<code>{_esc(f.code)}</code>",
        _esc(f.message),
        _block(f.block),
        _hex(f.tx_hash),
        _member(index, f.member),
        _hex(f.record_id),
    ]
    return f'<tr class="finding">{"".join(f"<td>{c}</td>" for c in cells)}</tr>'


def _findings_section(report: AuditReport, index: _Index) -> str:
    rows = [_finding_row(index, f) for f in _sorted_findings(report.findings)]
    table = _table(
        "findings",
        f"{_count(len(rows), 'finding')}, most severe first, then by block",
        ["Severity", "Code", "Message", "Block", "Tx", "Member", "Record"],
        rows,
        empty="No findings.",
        noun="finding",
    )
    return f'<section aria-labelledby="findings-h"><h2 id="findings-h">Findings</h2>{table}</section>'


def _review_row(index: _Index, report: AuditReport, d: DisclosureState) -> str:
    cells = [
        _hex(d.basis),
        _hex(d.requester),
        _member(index, d.member),
        _member(index, _custodian_of(report, d)),
        _hex(d.record_id),
        _block(d.block),
        _hex(d.tx_hash),
    ]
    return f'<tr class="review">{"".join(f"<td>{c}</td>" for c in cells)}</tr>'


def _review_section(report: AuditReport, index: _Index) -> str:
    queue = sorted(report.review_queue, key=lambda d: (d.block, d.tx_hash))
    table = _table(
        "review-queue",
        f"{_count(len(queue), 'break-glass disclosure')} by active clinics; the reason text is held"
        " off-chain by the requester, its hash is on chain",
        ["Reason hash", "Requester key", "Member", "Custodian", "Record", "Block", "Tx"],
        [_review_row(index, report, d) for d in queue],
        empty="Nothing to review.",
        noun="break-glass disclosure",
    )
    heading = '<h2 id="review-h">Break-glass review queue</h2>'
    return f'<section aria-labelledby="review-h">{heading}{table}</section>'


def _status(member: MemberState) -> str:
    current = _code_name(MemberStatus, member.status).lower()
    steps = " → ".join(
        f"{_esc(_code_name(MemberStatus, status).lower())} #{block}" for block, status in member.history
    )
    history = f'<div class="history">{steps}</div>' if steps else ""
    return f'<span class="status status-{_esc(current)}">{_esc(current)}</span>{history}'


def _member_row(index: _Index, member: MemberState) -> str:
    key = _key(member.address)
    revoked = index.revoked[key]
    consents = f"{index.granted[key]:,}" + (f" ({revoked:,} revoked)" if revoked else "")
    cells = [
        f'<span class="name">{_esc(member.name)}</span> {_hex(member.address)}',
        _esc(_code_name(Role, member.role).lower()),
        _status(member),
        f"{index.anchored[key]:,}",
        f"{index.received[key]:,}",
        consents,
    ]
    return f'<tr class="member">{"".join(f"<td>{c}</td>" for c in cells)}</tr>'


def _members_section(report: AuditReport, index: _Index) -> str:
    members = sorted(report.members.values(), key=lambda m: (m.role, m.name.lower(), _key(m.address)))
    table = _table(
        "members",
        f"{_count(len(members), 'member')}: status history as status #block",
        ["Member", "Role", "Status", "Records anchored", "Disclosures received", "Consents granted to it"],
        [_member_row(index, m) for m in members],
        empty="No members.",
        noun="member",
    )
    return f'<section aria-labelledby="members-h"><h2 id="members-h">Members</h2>{table}</section>'


# --- timeline chart (inline SVG) ------------------------------------------------------------

TIMELINE_BUCKETS = 40
"""At most this many bars: blocks are grouped into equal buckets."""
_W, _H = 960, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 40, 52


@dataclass(frozen=True)
class Timeline:
    """Disclosures per block bucket: `counts[i]` = (consent-based, break-glass)."""

    start: int
    width: int
    counts: list[tuple[int, int]]

    @classmethod
    def of(cls, report: AuditReport) -> Timeline:
        span = max(report.to_block - report.from_block + 1, 1)
        width = math.ceil(span / TIMELINE_BUCKETS)
        buckets = [[0, 0] for _ in range(math.ceil(span / width))]
        for d in report.disclosures:
            i = min(max((d.block - report.from_block) // width, 0), len(buckets) - 1)
            buckets[i][1 if d.break_glass else 0] += 1
        return cls(report.from_block, width, [(c, b) for c, b in buckets])

    def range_of(self, i: int) -> tuple[int, int]:
        first = self.start + i * self.width
        return first, first + self.width - 1


def _nice_ceiling(n: int) -> int:
    """The least round number (n itself up to 5, then 1, 2 or 5 times a power of ten) >= n."""
    if n <= 5:
        return max(n, 1)
    magnitude = int(10 ** (len(str(n)) - 1))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= n)


def _timeline_section(report: AuditReport) -> str:
    timeline = Timeline.of(report)
    return (
        '<section aria-labelledby="timeline-h"><h2 id="timeline-h">Disclosures over time</h2>'
        f'<figure class="chart">{timeline_svg(timeline)}</figure></section>'
    )


def timeline_svg(timeline: Timeline) -> str:
    """Stacked bars per block bucket (consent-based below, break-glass above), with axes."""
    total = sum(c + b for c, b in timeline.counts)
    glass = sum(b for _, b in timeline.counts)
    last = timeline.range_of(len(timeline.counts) - 1)[1]
    desc = (
        f"{_count(total, 'disclosure')}, {glass:,} of them break-glass, between blocks "
        f"{timeline.start} and {last}, in buckets of {_count(timeline.width, 'block')}."
    )
    top = _nice_ceiling(max((c + b for c, b in timeline.counts), default=0))
    parts = [_svg_axes(timeline, top), _svg_bars(timeline, top), _svg_legend()]
    if not total:
        parts.append(
            f'<text class="empty" x="{_W / 2}" y="{_H / 2}" text-anchor="middle">'
            "No disclosures in this block range</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" role="img" viewBox="0 0 {_W} {_H}"'
        ' aria-labelledby="timeline-title timeline-desc">'
        '<title id="timeline-title">Disclosures and break-glass events per block range</title>'
        f'<desc id="timeline-desc">{_esc(desc)}</desc>{"".join(parts)}</svg>'
    )


def _plot() -> tuple[float, float]:
    return _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM


def _svg_axes(timeline: Timeline, top: int) -> str:
    plot_w, plot_h = _plot()
    base = _TOP + plot_h
    parts = [f'<line class="axis" x1="{_LEFT}" y1="{base}" x2="{_W - _RIGHT}" y2="{base}"/>']
    for value in sorted({0, top // 2, top}):
        y = base - plot_h * value / top
        if value:
            parts.append(f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{value:,}</text>')
    n = len(timeline.counts)
    step = max(1, math.ceil(n / 6))
    for i in range(0, n, step):
        x = _LEFT + plot_w * (i + 0.5) / n
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{base + 18}" text-anchor="middle">'
            f"#{timeline.range_of(i)[0]}</text>"
        )
    parts.append(
        f'<text class="label" x="{_LEFT + plot_w / 2}" y="{_H - 8}" text-anchor="middle">'
        f"Block (bucket of {_count(timeline.width, 'block')})</text>"
        f'<text class="label" transform="translate(16 {_TOP + plot_h / 2}) rotate(-90)"'
        ' text-anchor="middle">Disclosures</text>'
    )
    return "".join(parts)


def _svg_bars(timeline: Timeline, top: int) -> str:
    plot_w, plot_h = _plot()
    n = len(timeline.counts)
    slot = plot_w / n
    bar_w = max(slot * 0.7, 1.0)
    base = _TOP + plot_h
    groups = []
    for i, (consent, glass) in enumerate(timeline.counts):
        if not consent + glass:
            continue
        x = _LEFT + slot * i + (slot - bar_w) / 2
        first, last = timeline.range_of(i)
        h_consent, h_glass = plot_h * consent / top, plot_h * glass / top
        rects = []
        if consent:
            rects.append(_rect("consent", x, base - h_consent, bar_w, h_consent))
        if glass:
            rects.append(_rect("break-glass", x, base - h_consent - h_glass, bar_w, h_glass))
        groups.append(
            f'<g class="bucket"><title>Blocks #{first}&ndash;#{last}: {consent:,} consent-based, '
            f"{glass:,} break-glass</title>{''.join(rects)}</g>"
        )
    return "".join(groups)


def _rect(kind: str, x: float, y: float, w: float, h: float) -> str:
    return f'<rect class="bar {kind}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}"/>'


def _svg_legend() -> str:
    x = _W - _RIGHT - 300
    return (
        f'<g class="legend" transform="translate({x} 12)">'
        '<rect class="swatch consent" width="14" height="14"/><text x="20" y="12">Consent-based</text>'
        '<rect class="swatch break-glass" x="150" width="14" height="14"/>'
        '<text x="170" y="12">Break-glass</text></g>'
    )


_CSS = """
:root { color-scheme: light; --ink: #1f2933; --muted: #52606d; --line: #d9e2ec; --bg: #f5f7fa;
  --critical: #a3161a; --high: #c2410c; --medium: #8a6100; --info: #1d4ed8; --ok: #067647;
  --consent: #2f6fdb; --glass: #e07a10; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 26px; margin: 0 0 12px; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
code { font: 13px/1.3 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
header { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 22px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 40px; margin: 0; }
.facts dt, .tile dt { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .04em; }
.facts dd { margin: 0; font-weight: 600; }
.verdict { display: flex; flex-direction: column; gap: 2px; margin: 20px 0 12px; padding: 14px 18px;
  border-radius: 8px; border-left: 6px solid; background: #fff; }
.verdict strong { font-size: 21px; }
.verdict span { color: var(--muted); }
.verdict-ok { border-color: var(--ok); } .verdict-ok strong { color: var(--ok); }
.verdict-critical { border-color: var(--critical); } .verdict-critical strong { color: var(--critical); }
.verdict-high { border-color: var(--high); } .verdict-high strong { color: var(--high); }
.verdict-medium { border-color: var(--medium); } .verdict-medium strong { color: var(--medium); }
.verdict-info { border-color: var(--info); } .verdict-info strong { color: var(--info); }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px;
  margin: 0 0 10px; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.tile dd { margin: 2px 0 0; font-size: 24px; font-weight: 650; }
.sev-tile-critical { border-top: 4px solid var(--critical); }
.sev-tile-high { border-top: 4px solid var(--high); }
.sev-tile-medium { border-top: 4px solid var(--medium); }
.sev-tile-info { border-top: 4px solid var(--info); }
.sev-tile-none { border-top: 4px solid var(--line); } .sev-tile-none dd { color: var(--muted); }
.scroll { overflow-x: auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
table { width: 100%; border-collapse: collapse; }
caption { caption-side: top; text-align: left; padding: 10px 12px; color: var(--muted); font-size: 13px; }
th, td { text-align: left; vertical-align: top; padding: 7px 12px; border-top: 1px solid var(--line); }
th { background: #eef2f6; font-size: 13px; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
td:has(> code:only-child) { white-space: nowrap; }
.sev { display: inline-block; min-width: 72px; padding: 1px 8px; border-radius: 10px; color: #fff;
  font-size: 12px; font-weight: 700; text-transform: uppercase; text-align: center; }
.sev-critical { background: var(--critical); } .sev-high { background: var(--high); }
.sev-medium { background: var(--medium); } .sev-info { background: var(--info); }
.name { font-weight: 600; }
.none { color: var(--muted); }
.empty td { color: var(--muted); font-style: italic; }
.more { color: var(--muted); font-style: italic; margin: 6px 2px; }
.status { font-weight: 600; } .status-active { color: var(--ok); }
.status-suspended { color: var(--critical); }
.history { color: var(--muted); font-size: 12px; }
.chart { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
.chart svg { display: block; width: 100%; height: auto; font-family: inherit; }
.axis { stroke: var(--muted); } .grid { stroke: var(--line); stroke-dasharray: 3 3; }
.tick { fill: var(--muted); font-size: 12px; } .label { fill: var(--ink); font-size: 13px; }
.legend text { fill: var(--ink); font-size: 13px; }
svg .empty { fill: var(--muted); font-size: 15px; font-style: italic; }
.consent { fill: var(--consent); } .break-glass { fill: var(--glass); }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
footer { margin-top: 32px; color: var(--muted); font-size: 13px; }
@media print { body { background: #fff; } main { padding: 0; } .scroll { overflow: visible; }
  section { break-inside: auto; } tr { break-inside: avoid; } }
"""
