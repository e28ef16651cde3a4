"""FHIR R4 Consent ⇄ on-chain consent grants.

The shape CareLedger reads and writes is an opt-in privacy consent: `status` active,
`scope` patient-privacy, `policyRule` OPTIN (nothing is shared unless a rule permits it),
and a root `provision` whose nested `permit` provisions are the grants. Each nested
provision names recipient actors (member organizations), purposes of use (v3 ActReason),
classes (FHIR resource types, mapped onto the coarse categories) and a period. Anything a
grant on chain cannot express (deny rules, security labels, codes, data references,
deeper nesting) is refused rather than dropped: dropping a restriction would share more
than the patient said.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar

from eth_utils.address import to_checksum_address

from careledger.codes import GRANTABLE_PURPOSES, Category, Purpose, categories_of, mask, purposes_of
from careledger.services.fhir import (
    CATEGORIES,
    FhirInvalid,
    Issue,
    category_of,
    patient_reference,
    validate,
)

MEMBER_SYSTEM = "urn:careledger:member"
"""Identifier system of a member organization; the value is its admin address."""
CONSENT_SYSTEM = "urn:careledger:consent"
"""Identifier system of an on-chain consent; the value is its id (0x hex)."""
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

RECIPIENT_ROLES = frozenset({"PRCP", "IRCP"})
"""Actor roles that make the actor a recipient, i.e. a grantee (primary / any recipient)."""
READ_ACTIONS = frozenset({"access", "disclose"})
"""A grant lets the grantee read records from the custodian: nothing else can be granted."""

# Elements of a nested provision that narrow it in ways a grant on chain cannot express.
_UNEXPRESSIBLE = ("securityLabel", "code", "dataPeriod", "data", "provision", "modifierExtension")
_ROOT_ELEMENTS = frozenset({"id", "extension", "type", "period", "provision"})

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_CONSENT_ID = re.compile(r"0x[0-9a-fA-F]{64}")
_DATETIME = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})(?:T(?P<hour>\d{2}):(?P<minute>\d{2})"
    r":(?P<second>\d{2})(?P<fraction>\.\d+)?(?P<zone>Z|[+-]\d{2}:\d{2}))?)?)?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_Code = TypeVar("_Code", Category, Purpose)


@dataclass(frozen=True)
class GrantTerms:
    """What a patient signs to grant one consent (less patient, nonce and deadline)."""

    grantee: str
    categories: int
    purposes: int
    valid_from: int
    valid_until: int


@dataclass(frozen=True)
class GrantView:
    """A consent as the chain holds it, for export; times are unix seconds."""

    consent_id: str
    grantee: str
    categories: int
    purposes: int
    valid_from: int
    valid_until: int
    revoked: bool
    granted_at: int


ActorResolver = Callable[[dict[str, Any]], str]
"""Maps an actor's Reference that carries no member identifier to the member's address;
raises FhirInvalid (e.g. code `not-found`) when it knows no such member."""


# --- import --------------------------------------------------------------------------------


def consent_to_grant_terms(consent: dict[str, Any], *, resolve_actor: ActorResolver) -> list[GrantTerms]:
    """The grants a FHIR R4 Consent asks for: one per recipient actor of each permit provision.

    The root provision may bound every grant with a `period`; each nested permit provision
    needs recipient actors (role PRCP or IRCP, an Organization), purposes, classes and a
    period ending somewhere (the chain has no open-ended grants). Refused: other statuses
    or scopes, OPTOUT policies, deny provisions, break-glass or unknown purposes, actions
    other than reading, and elements that would narrow a grant beyond what the chain holds.
    The caller checks the Consent's patient (`patient_reference`) against its own.
    """
    validate(consent)
    if consent["resourceType"] != "Consent":
        raise _refuse("invalid", "expected a Consent", "resourceType")
    root = _root_provision(consent)
    bounds = _period(root["period"], "Consent.provision.period") if "period" in root else (0, None)
    issues: list[Issue] = []
    grants: list[GrantTerms] = []
    for n, provision in enumerate(root["provision"]):
        try:
            grants.extend(_grants(provision, f"Consent.provision.provision[{n}]", bounds, resolve_actor))
        except FhirInvalid as exc:
            issues.extend(exc.issues)
    if issues:
        raise FhirInvalid(issues)
    return grants


def _refuse(code: str, diagnostics: str, expression: str | None = None) -> FhirInvalid:
    return FhirInvalid([Issue(code, diagnostics, expression)])


def _root_provision(consent: dict[str, Any]) -> dict[str, Any]:
    if consent["status"] != "active":
        shown = str(consent["status"])[:40]
        raise _refuse(
            "value", f"the Consent is {shown!r}: only an active Consent can be granted", "Consent.status"
        )
    if not _has_coding(consent["scope"], CONSENT_SCOPE, {"patient-privacy"}):
        raise _refuse("not-supported", "only patient-privacy consents are accepted", "Consent.scope")
    if "modifierExtension" in consent:
        raise _refuse("not-supported", "modifier extensions would change what the Consent means", "Consent")
    if patient_reference(consent) is None:
        raise _refuse("required", "a privacy consent names its patient", "Consent.patient")
    if _has_coding(consent.get("policyRule", {}), ACT_CODE, {"OPTOUT"}):
        raise _refuse(
            "not-supported", "CareLedger consents are opt-in (OPTIN), not opt-out", "Consent.policyRule"
        )
    root = consent.get("provision")
    if root is None:
        raise _refuse("required", "the Consent has no provision: it would grant nothing", "Consent.provision")
    if root.get("type", "permit") != "permit":
        raise _refuse(
            "not-supported",
            "deny provisions are not supported: consents are permit-only",
            "Consent.provision.type",
        )
    extra = sorted(set(root) - _ROOT_ELEMENTS)
    if extra:
        raise _refuse(
            "not-supported",
            f"the root provision may only bound the period; put {extra[0]} on the nested permit provisions",
            f"Consent.provision.{extra[0]}",
        )
    if not root.get("provision"):
        raise _refuse(
            "required", "no nested permit provision: the Consent would grant nothing", "Consent.provision"
        )
    return dict(root)


def _grants(
    provision: dict[str, Any], at: str, bounds: tuple[int, int | None], resolve_actor: ActorResolver
) -> list[GrantTerms]:
    _check_permit(provision, at)
    categories = _categories(provision.get("class"), f"{at}.class")
    purposes = _purposes(provision.get("purpose"), f"{at}.purpose")
    start, end = _period(provision["period"], f"{at}.period") if "period" in provision else (0, None)
    ends = [e for e in (end, bounds[1]) if e is not None]
    if not ends:
        raise _refuse("required", "the grant needs a period with an end: consents on chain always expire", at)
    valid_from, valid_until = max(start, bounds[0]), min(ends)
    if valid_until <= valid_from:
        raise _refuse("value", "the period ends before it starts (or before 1970)", f"{at}.period")
    actors = _recipients(provision.get("actor"), f"{at}.actor", resolve_actor)
    return [GrantTerms(actor, categories, purposes, valid_from, valid_until) for actor in actors]


def _check_permit(provision: dict[str, Any], at: str) -> None:
    kind = provision.get("type")
    if kind is None:
        raise _refuse("required", "a nested provision must say permit (or deny)", f"{at}.type")
    if kind != "permit":
        raise _refuse(
            "not-supported", "deny provisions are not supported: consents are permit-only", f"{at}.type"
        )
    unexpressible = next((name for name in _UNEXPRESSIBLE if name in provision), None)
    if unexpressible:
        reason = f"{unexpressible} cannot be expressed in a grant on chain"
        raise _refuse("not-supported", reason, f"{at}.{unexpressible}")
    for n, action in enumerate(provision.get("action", [])):
        if not _has_coding(action, CONSENT_ACTION, READ_ACTIONS):
            raise _refuse(
                "not-supported",
                "a grant permits reading only (consentaction access or disclose)",
                f"{at}.action[{n}]",
            )


def _has_coding(concept: dict[str, Any], system: str, codes: Iterable[str]) -> bool:
    return any(c.get("system") == system and c.get("code") in codes for c in concept.get("coding", []))


def _categories(classes: list[dict[str, Any]] | None, at: str) -> int:
    if not classes:
        raise _refuse("required", "name the resource types the grant covers (class)", at)
    found: list[Category] = []
    for n, coding in enumerate(classes):
        if coding.get("system") != RESOURCE_TYPES:
            raise _refuse("not-supported", f"class codes must come from {RESOURCE_TYPES}", f"{at}[{n}]")
        try:
            found.append(category_of(str(coding.get("code"))))
        except FhirInvalid as exc:
            raise _refuse(exc.code, exc.issues[0].diagnostics, f"{at}[{n}]") from None
    return mask(found)


def _purposes(codings: list[dict[str, Any]] | None, at: str) -> int:
    if not codings:
        raise _refuse("required", "name the purposes of use the grant covers (purpose)", at)
    found: list[Purpose] = []
    for n, coding in enumerate(codings):
        code = str(coding.get("code"))
        if coding.get("system") != ACT_REASON or code not in Purpose.__members__:
            shown = ", ".join(p.name for p in sorted(GRANTABLE_PURPOSES))
            raise _refuse("code-invalid", f"purpose must be a v3-ActReason code among {shown}", f"{at}[{n}]")
        if Purpose[code] not in GRANTABLE_PURPOSES:
            raise _refuse(
                "not-supported", "break-glass (BTG) is declared per request, never granted", f"{at}[{n}]"
            )
        found.append(Purpose[code])
    return mask(found)


def _recipients(actors: list[dict[str, Any]] | None, at: str, resolve_actor: ActorResolver) -> list[str]:
    if not actors:
        raise _refuse("required", "name the member organization the grant is for (actor)", at)
    addresses = []
    for n, actor in enumerate(actors):
        where = f"{at}[{n}]"
        if not _has_coding(actor["role"], PARTICIPATION, RECIPIENT_ROLES):
            raise _refuse(
                "not-supported", "the actor's role must be a recipient (PRCP or IRCP)", f"{where}.role"
            )
        addresses.append(_member_address(actor["reference"], f"{where}.reference", resolve_actor))
    return addresses


def _member_address(reference: dict[str, Any], at: str, resolve_actor: ActorResolver) -> str:
    identifier = reference.get("identifier", {})
    if identifier.get("system") == MEMBER_SYSTEM:
        return _checksummed(str(identifier.get("value")), f"{at}.identifier.value")
    literal = str(reference.get("reference", "Organization/"))
    declared = reference.get("type", "Organization")
    if declared != "Organization" or not re.match(r"(?:.*/)?Organization/", literal):
        raise _refuse(
            "not-supported", "grants go to member organizations: the actor must be an Organization", at
        )
    try:
        address = resolve_actor(reference)
    except FhirInvalid as exc:
        raise FhirInvalid(
            [Issue(i.code, i.diagnostics, i.expression or at, i.severity) for i in exc.issues]
        ) from None
    if not _ADDRESS.fullmatch(address):
        raise ValueError("resolve_actor must return a 0x-prefixed 20-byte address")
    return to_checksum_address(address)


def _checksummed(value: str, at: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise _refuse("value", "a member identifier is a 0x-prefixed 20-byte address", at)
    checksummed = to_checksum_address(value)
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and value != checksummed:
        raise _refuse("value", "the address's EIP-55 checksum is wrong", at)
    return checksummed


def _period(period: dict[str, Any], at: str) -> tuple[int, int | None]:
    """[valid_from, valid_until) in unix seconds; never wider than the Period says.

    Period bounds are inclusive at their precision (an end of 2026-06-30 includes that
    whole day), so the end becomes the first second after it. Dates without a time are
    read in UTC. Sub-second bounds are rounded inwards.
    """
    start = max(0, math.ceil(_instant(period["start"], f"{at}.start")[0])) if "start" in period else 0
    end = math.floor(_instant(period["end"], f"{at}.end")[1]) if "end" in period else None
    return start, end


def _instant(text: str, at: str) -> tuple[Decimal, Decimal]:
    """The first instant a FHIR dateTime covers and the first instant after it, in seconds."""
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise _refuse("value", "not a FHIR dateTime", at)
    year, month, day = (int(match[k] or 1) for k in ("year", "month", "day"))
    hour, minute, second = (int(match[k] or 0) for k in ("hour", "minute", "second"))
    try:
        first = datetime(year, month, day, hour, minute, second, tzinfo=_zone(match["zone"]))
    except ValueError:
        raise _refuse("value", "not a valid date or time", at) from None
    if match["second"]:
        fraction = Decimal(match["fraction"] or 0)
        width = Decimal(10) ** -len(match["fraction"][1:]) if match["fraction"] else Decimal(1)
        return _seconds(first) + fraction, _seconds(first) + fraction + width
    after = _next_calendar_step(first, day=bool(match["day"]), month=bool(match["month"]))
    return _seconds(first), _seconds(after)


def _zone(text: str | None) -> timezone:
    if text is None or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))


def _next_calendar_step(first: datetime, *, day: bool, month: bool) -> datetime:
    if day:
        return first + timedelta(days=1)
    if month:
        return first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    return first.replace(year=first.year + 1)


def _seconds(moment: datetime) -> Decimal:
    return Decimal((moment - _EPOCH) // timedelta(seconds=1))


# --- export --------------------------------------------------------------------------------


def grants_to_fhir_consent(patient_ref: str, grants: Iterable[GrantView]) -> dict[str, Any]:
    """The patient's on-chain consents as a FHIR R4 `searchset` Bundle, one Consent per grant."""
    consents = [grant_to_fhir_consent(patient_ref, grant) for grant in grants]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(consents),
        "entry": [{"resource": consent, "search": {"mode": "match"}} for consent in consents],
    }


def grant_to_fhir_consent(patient_ref: str, grant: GrantView) -> dict[str, Any]:
    """One on-chain consent as a FHIR R4 Consent (inactive once revoked).

    Its id is the consent id without `0x` (FHIR ids are at most 64 characters); the full id
    is also an identifier. Each category is written out as every resource type it covers.
    An active export reads back through `consent_to_grant_terms` to the same terms.
    """
    if not re.fullmatch(r"Patient/[A-Za-z0-9\-.]{1,64}", patient_ref):
        raise ValueError(f"{patient_ref!r} is not a Patient/<id> reference")
    if not _CONSENT_ID.fullmatch(grant.consent_id):
        raise ValueError("consent_id must be 0x-prefixed 32-byte hex")
    return {
        "resourceType": "Consent",
        "id": grant.consent_id[2:].lower(),
        "text": {"status": "generated", "div": _narrative(grant)},
        "identifier": [{"system": CONSENT_SYSTEM, "value": grant.consent_id.lower()}],
        "status": "inactive" if grant.revoked else "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient_ref},
        "dateTime": _datetime(grant.granted_at),
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": {"provision": [_provision(grant)]},
    }


def _provision(grant: GrantView) -> dict[str, Any]:
    period = {"end": _datetime(grant.valid_until - 1)}  # Period.end is inclusive
    if grant.valid_from:
        period = {"start": _datetime(grant.valid_from)} | period
    return {
        "type": "permit",
        "period": period,
        "actor": [
            {
                "role": {"coding": [{"system": PARTICIPATION, "code": "PRCP"}]},
                "reference": {
                    "type": "Organization",
                    "identifier": {"system": MEMBER_SYSTEM, "value": to_checksum_address(grant.grantee)},
                },
            }
        ],
        "action": [{"coding": [{"system": CONSENT_ACTION, "code": "access"}]}],
        "purpose": [
            {"system": ACT_REASON, "code": p.name} for p in _exact(purposes_of, grant.purposes, "purposes")
        ],
        "class": [
            {"system": RESOURCE_TYPES, "code": resource_type}
            for category in _exact(categories_of, grant.categories, "categories")
            for resource_type, of in CATEGORIES.items()
            if of is category
        ],
    }


def _exact(decode: Callable[[int], list[_Code]], bitmask: int, name: str) -> Sequence[_Code]:
    codes = decode(bitmask)
    if (
        not codes or mask(codes) != bitmask or any(c is Purpose.BTG for c in codes)
    ):  # IntEnums: `in` compares ints
        raise ValueError(f"{name} bitmask {bitmask:#x} holds no grantable codes or unknown bits")
    return codes


def _narrative(grant: GrantView) -> str:
    categories = ", ".join(c.name.lower() for c in categories_of(grant.categories))
    purposes = ", ".join(p.name for p in purposes_of(grant.purposes))
    start = f" from {_datetime(grant.valid_from)}" if grant.valid_from else ""
    state = " Revoked." if grant.revoked else ""
    text = (
        f"Permits member {to_checksum_address(grant.grantee)} to read {categories} for {purposes}{start}"
        f" until {_datetime(grant.valid_until)} (exclusive).{state}"
    )
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{html.escape(text)}</p></div>'


def _datetime(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
