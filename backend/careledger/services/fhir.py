"""The FHIR R4 edge of the gateway: parse, validate, classify and answer FHIR JSON.

Pure functions over `dict`s, no I/O. Structure is checked with the `fhir.resources.R4B`
models (they accept R4 content for the resource types we store); the codes CareLedger
depends on (Bundle type, request methods, ids, patient references) are checked here,
because the models check structure only, not code bindings.

Every refusal is a `FhirInvalid` whose `issues` are ready for `operation_outcome`; its
text is one line, never echoes large input and never carries a traceback.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import jiter
import orjson
from fhir.resources.R4B import get_fhir_model_class as _get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from careledger.codes import Category
from careledger.errors import CareLedgerError
from careledger.services.fhir_precheck import Precheck

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Default body limit: large enough for a transaction of ordinary records with inline
attachments, small enough that one request cannot pin a worker's memory."""

MAX_ISSUES = 20
"""A refusal lists at most this many issues; past that, more detail helps nobody."""

ISSUE_SEVERITIES = frozenset({"fatal", "error", "warning", "information"})

ISSUE_TYPES = frozenset(
    {
        "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown",
        "expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate",
        "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
        "too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store",
        "exception", "timeout", "incomplete", "throttled", "informational",
    }
)  # fmt: skip
"""FHIR R4 IssueType codes (http://hl7.org/fhir/issue-type)."""

ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")
"""FHIR R4 `id`: the models check the characters but not the length."""

_CLIP = 200


@dataclass(frozen=True)
class Issue:
    """One problem found in FHIR input: an OperationOutcome.issue in waiting."""

    code: str
    diagnostics: str
    expression: str | None = None
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.code not in ISSUE_TYPES:
            raise ValueError(f"{self.code!r} is not a FHIR IssueType code")
        if self.severity not in ISSUE_SEVERITIES:
            raise ValueError(f"{self.severity!r} is not a FHIR IssueSeverity code")


class FhirInvalid(CareLedgerError):
    """FHIR input was refused; `issues` say where and why (first issue in the message)."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        if not issues:
            raise ValueError("FhirInvalid needs at least one issue")
        self.issues: tuple[Issue, ...] = tuple(issues[:MAX_ISSUES])
        first = self.issues[0]
        where = f"{first.expression}: " if first.expression else ""
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(f"{where}{first.diagnostics}{more}")

    @property
    def code(self) -> str:
        """The first issue's IssueType code."""
        return self.issues[0].code


class PatientMismatch(FhirInvalid):
    """A resource is about another patient than the one the request is for."""


def _invalid(code: str, diagnostics: str, expression: str | None = None) -> FhirInvalid:
    return FhirInvalid([Issue(code, diagnostics, expression)])


def _clip(text: str, limit: int = _CLIP) -> str:
    """One line of at most `limit` characters, so no message echoes large input."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --- parsing -------------------------------------------------------------------------------

# A whole string, or an unterminated one up to the end (json.loads then reports it): a match
# never fails once started, so the scan stays linear on hostile input.
_STRING_OR_REST = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json(body: bytes, *, max_depth: int = 64, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """Parse a request body as one strict JSON object.

    Refuses (FhirInvalid): bodies over `max_bytes` (`too-long`), invalid UTF-8, malformed
    JSON, duplicate keys, NaN/Infinity, unpaired UTF-16 surrogate escapes, non-object top
    level (`structure`), nesting deeper than `max_depth` (`too-costly`). A leading UTF-8
    byte order mark is ignored (RFC 8259 §8.1 allows it).

    Numbers with a fraction or exponent come back as `Decimal`: FHIR decimals keep their
    precision (1.50 ≠ 1.5), so a float would corrupt them. Serialize with `canonical_json`.

    jiter parses in Rust, refusing duplicate keys, NaN, lone surrogates and nesting past its
    own limit as it goes; whatever it refuses is parsed again by `reference_parse_json`,
    which says what is wrong (tests hold the two to the same answers).
    """
    if len(body) > max_bytes:
        raise _invalid("too-long", f"body is {len(body)} bytes; the limit is {max_bytes}")
    try:
        value = jiter.from_json(
            body.removeprefix(codecs.BOM_UTF8),
            allow_inf_nan=False,
            catch_duplicate_keys=True,
            float_mode="decimal",
            cache_mode="keys",
        )
    except ValueError:
        return reference_parse_json(body, max_depth=max_depth, max_bytes=max_bytes)
    if not _depth_within(value, max_depth):
        raise _invalid("too-costly", f"JSON nested deeper than {max_depth} levels")
    if not isinstance(value, dict):
        raise _invalid("structure", f"the body must be a JSON object, not {_json_kind(value)}")
    return value


def _depth_within(value: Any, max_depth: int) -> bool:
    """Whether a parsed JSON value nests at most `max_depth` objects and arrays deep: one
    level at a time, so the walk never recurses."""
    level = [value] if type(value) is dict or type(value) is list else []
    for _ in range(max_depth):
        inner: list[Any] = []
        for item in level:
            members = item.values() if type(item) is dict else item
            inner += [v for v in members if type(v) is dict or type(v) is list]
        if not inner:
            return True
        level = inner
    return not level


def reference_parse_json(
    body: bytes, *, max_depth: int = 64, max_bytes: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """parse_json written with the standard library: what names the fault in input the fast
    path refuses, and the definition the fast path is tested against."""
    if len(body) > max_bytes:
        raise _invalid("too-long", f"body is {len(body)} bytes; the limit is {max_bytes}")
    text = _decode(body)
    structure = _STRING_OR_REST.sub("", text)  # what is left once strings are cut out
    _check_depth(structure, max_depth)
    try:
        value = _DECODER.decode(text)
        # Every ':' outside strings separates one key from its value: fewer members than that
        # means a key came twice. Only then parse again, naming it (a hook per object costs
        # several times the parse itself).
        if _members(value) != structure.count(":"):
            _NAMING_DUPLICATES.decode(text)
    except json.JSONDecodeError as exc:
        raise _invalid(
            "structure", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (ValueError, InvalidOperation):  # integers of over 4,300 digits, exponents past 10^18
        raise _invalid("structure", "a number in the body is too large") from None
    if not isinstance(value, dict):
        raise _invalid("structure", f"the body must be a JSON object, not {_json_kind(value)}")
    if _SURROGATE_ESCAPE.search(text):
        _check_surrogates(value)
    return value


def _decode(body: bytes) -> str:
    try:
        return body.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid("structure", f"the body is not valid UTF-8 (byte {exc.start})") from None


_BRACKETS = re.compile(r"[\[\]{}]")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _check_depth(structure: str, max_depth: int) -> None:
    """Refuse nesting deeper than `max_depth` in JSON text whose strings were cut out: the
    running depth over its brackets is summed in C (itertools.accumulate)."""
    steps = map(_DEPTH_STEP.__getitem__, _BRACKETS.findall(structure))
    if max(itertools.accumulate(steps), default=0) > max_depth:
        raise _invalid("too-costly", f"JSON nested deeper than {max_depth} levels")


def _members(value: Any) -> int:
    """How many members the objects in a parsed JSON value have, all together."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    return count


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _invalid("structure", f"duplicate key {_clip(json.dumps(key), 64)} in a JSON object")
            seen.add(key)
    return result


def _refuse_constant(name: str) -> Any:
    raise _invalid("structure", f"{name} is not a JSON number")


# Built once: json.loads(text, parse_float=...) builds a decoder per call, and that costs five
# times the parse of a 100 kB Bundle.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=Decimal)
_NAMING_DUPLICATES = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant, parse_float=Decimal
)


def _check_surrogates(value: Any) -> None:
    """Refuse `\\ud800`-style escapes that leave a lone UTF-16 surrogate (not encodable)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _invalid("structure", "a string holds an unpaired UTF-16 surrogate escape") from None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


# --- validation ----------------------------------------------------------------------------

# FHIR JSON property names; also refuses the models' Python aliases (`gender__ext`).
_ELEMENT_NAME = re.compile(r"_?[A-Za-z][A-Za-z0-9]*")


def validate(resource: dict[str, Any]) -> None:
    """Validate one resource, or a transaction Bundle and every resource in it.

    Checks FHIR JSON rules the models let through (no null members, no empty objects or
    arrays, element names only), the R4B model of the resource type, ids (`[A-Za-z0-9-.]`,
    at most 64), and for a Bundle the transaction rules (type `transaction`, PUT/POST
    entries with matching urls and ids, no duplicates; see `split_transaction`).
    """
    resource_type = _resource_type(resource, None)
    if resource_type == "Bundle":
        _transaction_entries(resource)
        return
    if not _precheck().accepts(resource):  # then the shape rules and the model say why
        _raise_if(_shape_issues(resource, resource_type))
        _raise_if(_model_issues(resource, resource_type))
    _raise_if(_id_issues(resource, resource_type))


@lru_cache(maxsize=256)
def get_fhir_model_class(name: str) -> Any:
    """fhir.resources' model class lookup, memoised (it imports by name on every call)."""
    return _get_fhir_model_class(name)


def _raise_if(issues: list[Issue]) -> None:
    if issues:
        raise FhirInvalid(issues)


def _resource_type(resource: Any, at: str | None) -> str:
    """The resource's type, if it is an R4 resource type (not a data type, not abstract)."""
    where = f"{at}.resourceType" if at else "resourceType"
    if not isinstance(resource, dict):
        raise _invalid("structure", "a resource must be a JSON object", at)
    name = resource.get("resourceType")
    if name is None:
        raise _invalid("required", "resourceType is missing", at)
    if not isinstance(name, str) or not _is_resource_type(name):
        raise _invalid("not-supported", f"{_clip(str(name), 64)!r} is not a FHIR R4 resource type", where)
    return name


@lru_cache(maxsize=1024)
def _is_resource_type(name: str) -> bool:
    if name in ("Resource", "DomainResource") or not name.isalnum():
        return False
    try:
        model = get_fhir_model_class(name)
    except ValueError:
        return False
    return issubclass(model, Resource)


_NAMES_SEEN: dict[str, bool] = {}  # element names are few and repeat: their check is memoised


def _is_element_name(key: str) -> bool:
    known = _NAMES_SEEN.get(key)
    if known is None:
        known = bool(_ELEMENT_NAME.fullmatch(key))
        if len(_NAMES_SEEN) < 10_000:  # bounded: keys are client input
            _NAMES_SEEN[key] = known
    return known


def _shape_ok(value: Any) -> bool:
    """_shape_issues' rules without building a path per element: the common, valid case."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not item:
                return False
            for key, member in item.items():
                if member is None or not _is_element_name(key):
                    return False
                if isinstance(member, dict | list):
                    stack.append(member)
        elif isinstance(item, list):
            if not item:
                return False
            stack.extend(member for member in item if isinstance(member, dict | list))
    return True


def _shape_issues(value: Any, at: str) -> list[Issue]:
    if _shape_ok(value):
        return []
    issues: list[Issue] = []
    stack: list[tuple[str, Any]] = [(at, value)]
    while stack and len(issues) < MAX_ISSUES:
        path, item = stack.pop()
        if isinstance(item, dict):
            if not item:
                issues.append(Issue("structure", "empty objects are not allowed in FHIR JSON", path))
            for key, member in reversed(item.items()):
                if not _is_element_name(key):
                    issues.append(
                        Issue("structure", f"{_clip(json.dumps(key), 64)} is not an element name", path)
                    )
                elif member is None:
                    issues.append(
                        Issue("structure", "null is not allowed here: omit the element", f"{path}.{key}")
                    )
                else:
                    stack.append((f"{path}.{key}", member))
        elif isinstance(item, list):
            if not item:
                issues.append(Issue("structure", "empty arrays are not allowed in FHIR JSON", path))
            # null stays allowed in arrays: it aligns primitive values with their `_x` extensions
            stack.extend((f"{path}[{i}]", member) for i, member in reversed(list(enumerate(item))))
    return issues


def _resource_issues(resource: dict[str, Any], at: str) -> list[Issue]:
    """R4B model issues (the compiled pre-check first, the model for what it refuses), then
    our id rule, for one resource whose shape passed."""
    if not _precheck().accepts(resource):
        issues = _model_issues(resource, at)
        if issues:
            return issues
    return _id_issues(resource, at)


def _model_issues(resource: dict[str, Any], at: str) -> list[Issue]:
    """What the resource's R4B model says is wrong with it (nothing, if it accepts it)."""
    model = get_fhir_model_class(resource["resourceType"])
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [_model_issue(error, at) for error in exc.errors()[:MAX_ISSUES]]
    except (KeyError, TypeError, AttributeError):
        # fhir.resources raises these for some malformed input (an unknown contained resourceType)
        return [Issue("structure", "the resource does not follow its FHIR R4 structure", at)]
    return []


def _id_issues(resource: dict[str, Any], at: str) -> list[Issue]:
    resource_id = resource.get("id")
    if resource_id is not None and not (isinstance(resource_id, str) and ID_PATTERN.fullmatch(resource_id)):
        return [Issue("value", "ids are 1-64 characters from A-Z a-z 0-9 - .", f"{at}.id")]
    return []


PRECHECKED = frozenset({"Bundle", "Medication", "Practitioner", "PractitionerRole", "Organization",
                        "Location", "Device", "Specimen", "Substance"})  # fmt: skip
"""Compiled for the pre-check besides the record types (CATEGORIES): the transaction Bundle
and the resources records commonly contain."""

_PRECHECK_LOCK = threading.Lock()
_PRECHECK: list[Precheck] = []  # built once, by whichever thread needs it first


def prepare() -> None:
    """Build what validation needs now rather than on the first record (the gateway does it
    at startup, before it freezes what lives as long as the process)."""
    _precheck()


def _precheck() -> Precheck:
    """Built on first use (~0.5 s, ~20 MB), not at import: most processes never ingest."""
    if not _PRECHECK:
        with _PRECHECK_LOCK:
            if not _PRECHECK:
                _PRECHECK.append(Precheck(PRECHECKED | CATEGORIES.keys()))
    return _PRECHECK[0]


def _model_issue(error: Any, at: str) -> Issue:
    kind = str(error.get("type", ""))
    if kind.endswith("missing"):
        code = "required"
    elif kind in ("extra_forbidden", "list_type", "dict_type", "model_validation_format", "json_invalid"):
        code = "structure"
    else:
        code = "value"
    return Issue(code, _clip(str(error.get("msg", "invalid value"))), _expression(at, error.get("loc", ())))


def _expression(at: str, loc: Iterable[Any]) -> str:
    expression = at
    for part in loc:
        if isinstance(part, int):
            expression += f"[{part}]"
        elif part != "root":  # pydantic's name for a model's own validator
            expression += "." + _json_name(_clip(str(part), 64))
    return expression


def _json_name(field: str) -> str:
    if field == "resource_type":
        return "resourceType"
    if field.endswith("__ext"):
        return "_" + field.removesuffix("__ext")
    return field.removesuffix("_")  # `class_` and other Python keywords


# --- categories ----------------------------------------------------------------------------

CATEGORIES: Mapping[str, Category] = MappingProxyType(
    {
        "Patient": Category.DEMOGRAPHICS,
        "RelatedPerson": Category.DEMOGRAPHICS,
        "Encounter": Category.ENCOUNTERS,
        "EpisodeOfCare": Category.ENCOUNTERS,
        "Condition": Category.CONDITIONS,
        "Observation": Category.OBSERVATIONS,
        "MedicationRequest": Category.MEDICATIONS,
        "MedicationStatement": Category.MEDICATIONS,
        "MedicationAdministration": Category.MEDICATIONS,
        "MedicationDispense": Category.MEDICATIONS,
        "AllergyIntolerance": Category.ALLERGIES,
        "Immunization": Category.IMMUNIZATIONS,
        "Procedure": Category.PROCEDURES,
        "DiagnosticReport": Category.DIAGNOSTICS,
        "ImagingStudy": Category.DIAGNOSTICS,
        "DocumentReference": Category.DOCUMENTS,
        "Composition": Category.DOCUMENTS,
        "Claim": Category.CLAIMS,
        "ClaimResponse": Category.CLAIMS,
        "ExplanationOfBenefit": Category.CLAIMS,
        "Coverage": Category.CLAIMS,
    }
)
"""The resource types CareLedger stores as patient records, and the category of each."""

_NOT_RECORDS = MappingProxyType(
    {
        "Consent": "consents are granted through the consent endpoint, not stored as records",
        "Bundle": "a Bundle is not a record: send the records as the entries of a transaction Bundle",
        "Binary": "Binary names no patient: send documents as DocumentReference with inline content",
        "Medication": "Medication is a product definition, not patient data: contain it in the "
        "MedicationRequest that uses it",
    }
)


def category_of(resource_type: str) -> Category:
    """The data category of a resource type CareLedger stores; FhirInvalid otherwise."""
    category = CATEGORIES.get(resource_type)
    if category is None:
        raise FhirInvalid([_unsupported_type(resource_type, None)])
    return category


def _unsupported_type(resource_type: str, at: str | None) -> Issue:
    reason = _NOT_RECORDS.get(resource_type, "it is not one of the record types CareLedger stores")
    return Issue("not-supported", f"{_clip(resource_type, 64)} is not accepted: {reason}", at)


# --- patient references --------------------------------------------------------------------

PATIENT_ELEMENTS: Mapping[str, str] = MappingProxyType(
    {
        "RelatedPerson": "patient",
        "Encounter": "subject",
        "EpisodeOfCare": "patient",
        "Condition": "subject",
        "Observation": "subject",
        "MedicationRequest": "subject",
        "MedicationStatement": "subject",
        "MedicationAdministration": "subject",
        "MedicationDispense": "subject",
        "AllergyIntolerance": "patient",
        "Immunization": "patient",
        "Procedure": "subject",
        "DiagnosticReport": "subject",
        "ImagingStudy": "subject",
        "DocumentReference": "subject",
        "Composition": "subject",
        "Claim": "patient",
        "ClaimResponse": "patient",
        "ExplanationOfBenefit": "patient",
        "Coverage": "beneficiary",
        "Consent": "patient",
    }
)
"""The element naming the patient a resource is about (a Patient is about itself)."""

_PATIENT_REFERENCE = re.compile(r"Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?")
_TYPED_REFERENCE = re.compile(r"([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?")


def patient_reference(resource: dict[str, Any]) -> str | None:
    """`Patient/<id>` of the patient the resource is about; None if it names none.

    Only a relative literal reference can be matched to the enrolled patient: a reference
    to another type (a Group, a Device), by identifier only, to a contained resource or to
    another server is refused as `not-supported`. A version (`/_history/n`) is dropped.
    """
    resource_type = _resource_type(resource, None)
    if resource_type == "Patient":
        resource_id = resource.get("id")
        return f"Patient/{resource_id}" if isinstance(resource_id, str) else None
    element = PATIENT_ELEMENTS.get(resource_type)
    if element is None:
        raise FhirInvalid([_unsupported_type(resource_type, None)])
    reference = resource.get(element)
    if reference is None:
        return None
    return _patient_of(reference, f"{resource_type}.{element}")


def _patient_of(reference: Any, at: str) -> str:
    if not isinstance(reference, dict):
        raise _invalid("structure", "a Reference must be a JSON object", at)
    declared = reference.get("type")
    if declared is not None and declared != "Patient":
        raise _invalid("not-supported", f"refers to a {_clip(str(declared), 64)}, not to a Patient", at)
    literal = reference.get("reference")
    if not isinstance(literal, str):
        if "identifier" in reference:
            raise _invalid(
                "not-supported", "a reference by identifier cannot be matched: use Patient/<id>", at
            )
        raise _invalid("required", "the reference names no resource: use Patient/<id>", at)
    patient = _PATIENT_REFERENCE.fullmatch(literal)
    if patient:
        return f"Patient/{patient.group(1)}"
    other = _TYPED_REFERENCE.fullmatch(literal)
    if other:
        raise _invalid("not-supported", f"refers to a {other.group(1)}, not to a Patient", at)
    raise _invalid("not-supported", f"{_clip(literal, 80)!r} is not a relative reference Patient/<id>", at)


def require_patient(resource: dict[str, Any], patient: str, *, at: str | None = None) -> None:
    """Refuse a resource that is not about `patient` (a `Patient/<id>`), or names no patient.

    `at` roots the issues' expressions (e.g. `Bundle.entry[2].resource`).
    """
    if not _PATIENT_REFERENCE.fullmatch(patient) or "/_history/" in patient:
        raise ValueError(f"{patient!r} is not a Patient/<id> reference")
    try:
        found = patient_reference(resource)
    except FhirInvalid as exc:
        raise _relocated(exc, at) from None
    resource_type = resource["resourceType"]
    where = _join(at or resource_type, PATIENT_ELEMENTS.get(resource_type, "id"))
    if found is None:
        raise _invalid("required", f"names no patient: it must be about {patient}", where)
    if found != patient:
        raise PatientMismatch(
            [Issue("business-rule", f"is about {found}, but this request is for {patient}", where)]
        )


def check_record(resource: dict[str, Any], *, patient: str) -> Category:
    """Validate a single resource for ingest for `patient`; return its data category."""
    validate(resource)
    category = category_of(resource["resourceType"])
    require_patient(resource, patient)
    return category


def _relocated(exc: FhirInvalid, at: str | None) -> FhirInvalid:
    """The same issues, with expressions rooted at `at` (a Bundle entry) instead of the type."""
    if at is None:
        return exc
    issues = [
        Issue(i.code, i.diagnostics, _join(at, (i.expression or "").partition(".")[2]), i.severity)
        for i in exc.issues
    ]
    return type(exc)(issues)


def _join(at: str, element: str | None) -> str:
    return f"{at}.{element}" if element else at


# --- canonical form ------------------------------------------------------------------------

_SERVER_META = ("versionId", "lastUpdated")


def canonical_json(resource: dict[str, Any], *, parsed: bool = False) -> bytes:
    """Deterministic UTF-8 JSON of a resource, for idempotency comparisons and storage.

    Sorted keys, no insignificant whitespace, non-ASCII kept as UTF-8, decimals exactly as
    sent. `meta.versionId` and `meta.lastUpdated` are left out: they are server-managed
    (FHIR servers overwrite them on update; the gateway assigns its own versions), so a
    client echoing them back, or stamping a new lastUpdated on a re-send, is no change.
    The narrative `text` is kept: it is clinical content (it may say things the coded data
    does not), so a changed narrative is a real change and must become a new version.

    `parsed`: the resource is (a rewrite of) parse_json's output, which holds no float, so
    the walk looking for one is skipped (an integer past 64 bits still goes to the reference).
    """
    meta = resource.get("meta")
    if isinstance(meta, dict) and any(key in meta for key in _SERVER_META):
        trimmed = {k: v for k, v in meta.items() if k not in _SERVER_META}
        resource = {k: v for k, v in resource.items() if k != "meta"} | ({"meta": trimmed} if trimmed else {})
    if parsed or _orjson_safe(resource):
        try:
            return orjson.dumps(resource, default=_decimal_fragment, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # a value no JSON can hold: the reference encoder says which
            pass
    return reference_canonical_json(resource)


def _orjson_safe(value: Any) -> bool:
    """No float (orjson writes NaN as null) and no integer past 64 bits (orjson refuses it)
    anywhere: parse_json's output never has either, so this is the common case."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) or (isinstance(item, int) and not -(2**63) <= item < 2**64):
            return False
    return True


def _decimal_fragment(value: Any) -> orjson.Fragment:
    """A Decimal exactly as it was sent (orjson writes the fragment's text as it is)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("NaN and Infinity are not JSON numbers")
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def reference_canonical_json(resource: dict[str, Any]) -> bytes:
    """canonical_json's bytes, written out in Python: the definition orjson's output is tested
    against, and what serialises what orjson cannot (integers past 64 bits)."""
    parts: list[str] = []
    _encode(resource, parts)
    return "".join(parts).encode("utf-8")


def _encode(value: Any, parts: list[str]) -> None:
    if isinstance(value, dict):
        parts.append("{")
        for n, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            parts.append("," if n else "")
            parts.append(json.dumps(key, ensure_ascii=False))
            parts.append(":")
            _encode(value[key], parts)
        parts.append("}")
    elif isinstance(value, list):
        parts.append("[")
        for n, item in enumerate(value):
            parts.append("," if n else "")
            _encode(item, parts)
        parts.append("]")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("NaN and Infinity are not JSON numbers")
        parts.append(str(value))
    elif value is None or isinstance(value, str | bool | int | float):
        parts.append(json.dumps(value, ensure_ascii=False, allow_nan=False))
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


# --- transactions --------------------------------------------------------------------------


@dataclass(frozen=True)
class TransactionEntry:
    """One entry of an accepted transaction: a resource to create or update by (type, id)."""

    full_url: str | None
    resource_type: str
    resource_id: str
    method: str
    resource: dict[str, Any]


_CONDITIONALS = ("ifNoneMatch", "ifModifiedSince", "ifMatch", "ifNoneExist")
_UUID_URN = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OID_URN = re.compile(r"urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+")


def split_transaction(bundle: dict[str, Any], *, patient: str | None = None) -> list[TransactionEntry]:
    """Validate a transaction Bundle and return its entries, in order.

    Accepted entries: `PUT {Type}/{id}` whose resource has that type and id, or
    `POST {Type}` whose resource carries a client-assigned id. A POST without an id is
    refused rather than given a server id: ingest is idempotent by (type, id), and a
    server-assigned id would turn every retry into a duplicate record. The id is never
    taken from a `urn:uuid:` fullUrl, which clients regenerate on each send.

    Refused: other Bundle types, other methods (erasure has its own endpoint), conditional
    requests, two entries for the same (type, id) or fullUrl, a fullUrl that disagrees
    with the id, resource types CareLedger does not store, and, when `patient` is given,
    resources about anyone else. References to an entry's `urn:uuid:`/`urn:oid:` fullUrl
    are rewritten to `{Type}/{id}` as a FHIR transaction requires (so a retry with fresh
    uuids stores identical content); one that matches no entry is refused.
    """
    entries, references = _transaction_entries(bundle)
    targets = {e.full_url: f"{e.resource_type}/{e.resource_id}" for e in entries if e.full_url}
    if references is not None and not any(r in targets or r.startswith(_LOCAL_URNS) for r in references):
        resolved = entries  # the pre-check saw every reference in the Bundle: none to rewrite
    else:
        resolved = [_resolved(entry, n, targets) for n, entry in enumerate(entries)]
    check_entries(resolved, patient=patient)
    return resolved


def check_entries(entries: Sequence[TransactionEntry], *, patient: str | None = None) -> None:
    """The per-entry rules of split_transaction on entries it returned: a stored record type
    and, when `patient` is given, about that patient alone (so a caller that learns the
    patient from the entries validates the Bundle once, not twice)."""
    issues: list[Issue] = []
    mismatch = False
    for n, entry in enumerate(entries):
        at = f"Bundle.entry[{n}].resource"
        if entry.resource_type not in CATEGORIES:
            issues.append(_unsupported_type(entry.resource_type, f"{at}.resourceType"))
        elif patient is not None:
            try:
                require_patient(entry.resource, patient, at=at)
            except FhirInvalid as exc:
                mismatch = mismatch or isinstance(exc, PatientMismatch)
                issues.extend(exc.issues)
    if issues:
        raise (PatientMismatch if mismatch else FhirInvalid)(issues)


def _resolved(entry: TransactionEntry, n: int, targets: Mapping[str, str]) -> TransactionEntry:
    unresolved: list[str] = []
    resource = _resolve_references(entry.resource, targets, unresolved)
    if unresolved:
        where = f"Bundle.entry[{n}].resource"
        raise _invalid("invalid", f"{_clip(unresolved[0], 80)} matches no entry's fullUrl", where)
    return TransactionEntry(entry.full_url, entry.resource_type, entry.resource_id, entry.method, resource)


def _transaction_entries(
    bundle: dict[str, Any],
) -> tuple[list[TransactionEntry], list[str] | None]:
    """Check a transaction Bundle completely; its entries as given (references untouched),
    and every string `reference` in it when the compiled pre-check saw them all (else None)."""
    seen: list[str] = []
    if _resource_type(bundle, None) != "Bundle":
        raise _invalid("invalid", "expected a Bundle", "resourceType")
    if bundle.get("type") != "transaction":
        shown = _clip(str(bundle.get("type")), 40)
        raise _invalid(
            "not-supported", f"Bundle type {shown!r} is not accepted: only 'transaction'", "Bundle.type"
        )
    raw = bundle.get("entry", [])
    accepted = _precheck().accepts(bundle, seen)  # the Bundle and its resources in one pass
    if accepted:
        _raise_if(_id_issues(bundle, "Bundle"))
        resources = [(n, e["resource"]) for n, e in enumerate(raw) if "resource" in e]
        _raise_if([i for n, r in resources for i in _id_issues(r, f"Bundle.entry[{n}].resource")])
    else:
        # FHIR JSON forbids empty arrays, but `"entry": []` is how clients (and our signature
        # test vector) write an empty transaction: tolerate it there alone.
        tolerated = {k: v for k, v in bundle.items() if not (k == "entry" and v == [])}
        _raise_if(_shape_issues(tolerated, "Bundle"))
        shell = (
            {**bundle, "entry": [_without_resource(e) for e in raw]}
            if isinstance(raw, list) and raw
            else bundle
        )
        _raise_if(_resource_issues(shell, "Bundle"))
        _raise_if([issue for n, entry in enumerate(raw) for issue in _entry_resource_issues(entry, n)])
    entries: list[TransactionEntry] = []
    issues: list[Issue] = []
    for n, entry in enumerate(raw):
        try:
            entries.append(_entry(entry, n))
        except FhirInvalid as exc:
            issues.extend(exc.issues)
    _raise_if(issues or list(_duplicates(entries)))
    return entries, (seen if accepted else None)


def _without_resource(entry: Any) -> Any:
    return {k: v for k, v in entry.items() if k != "resource"} if isinstance(entry, dict) else entry


def _entry_resource_issues(entry: dict[str, Any], n: int) -> list[Issue]:
    at = f"Bundle.entry[{n}].resource"
    if "resource" not in entry:
        return []  # reported with the request, which says why a resource is needed
    try:
        _resource_type(entry["resource"], at)
    except FhirInvalid as exc:
        return list(exc.issues)
    return _resource_issues(entry["resource"], at)


def _entry(entry: dict[str, Any], n: int) -> TransactionEntry:
    at = f"Bundle.entry[{n}]"
    method = _request_method(entry.get("request"), at)
    resource = entry.get("resource")
    if not isinstance(resource, dict):
        raise _invalid("required", f"a {method} entry needs a resource", f"{at}.resource")
    resource_type, resource_id = resource["resourceType"], resource.get("id")
    if resource_id is None:
        raise _invalid(
            "required",
            f"{method} needs a client-assigned id: PUT {resource_type}/{{id}}",
            f"{at}.resource.id",
        )
    expected_url = f"{resource_type}/{resource_id}" if method == "PUT" else resource_type
    if entry["request"].get("url") != expected_url:
        raise _invalid(
            "invalid", f"request.url must be {expected_url!r} for this resource", f"{at}.request.url"
        )
    full_url = entry.get("fullUrl")
    if full_url is not None:
        _check_full_url(full_url, f"{resource_type}/{resource_id}", f"{at}.fullUrl")
    return TransactionEntry(full_url, resource_type, resource_id, method, resource)


def _request_method(request: Any, at: str) -> str:
    if not isinstance(request, dict):
        raise _invalid("required", "a transaction entry needs a request (method and url)", f"{at}.request")
    method = request.get("method")
    if method not in ("PUT", "POST"):
        shown = _clip(str(method), 16)
        raise _invalid(
            "not-supported", f"method {shown} is not accepted: only PUT and POST", f"{at}.request.method"
        )
    if any(name in request for name in _CONDITIONALS) or "?" in str(request.get("url", "")):
        raise _invalid("not-supported", "conditional requests are not supported", f"{at}.request")
    return str(method)


def _check_full_url(full_url: str, local: str, at: str) -> None:
    if full_url.startswith("urn:uuid:"):
        if not _UUID_URN.fullmatch(full_url):
            raise _invalid("value", "a urn:uuid fullUrl needs a lower-case RFC 4122 uuid", at)
    elif full_url.startswith("urn:oid:"):
        if not _OID_URN.fullmatch(full_url):
            raise _invalid("value", "malformed urn:oid fullUrl", at)
    elif not full_url.startswith(("http://", "https://")):
        raise _invalid("value", "fullUrl must be an absolute http(s) URL, a urn:uuid or a urn:oid", at)
    elif not full_url.endswith("/" + local):
        raise _invalid("invalid", f"fullUrl disagrees with the resource: it must end with /{local}", at)


def _duplicates(entries: list[TransactionEntry]) -> Iterator[Issue]:
    seen: dict[str, int] = {}
    for n, entry in enumerate(entries):
        for key in {f"{entry.resource_type}/{entry.resource_id}", entry.full_url or ""} - {""}:
            if key in seen:
                yield Issue(
                    "invalid", f"{_clip(key, 80)} is already in entry[{seen[key]}]", f"Bundle.entry[{n}]"
                )
            seen.setdefault(key, n)


_LOCAL_URNS = ("urn:uuid:", "urn:oid:")


def _resolve_references(value: Any, targets: Mapping[str, str], unresolved: list[str]) -> Any:
    """`value` with bundle-local references rewritten to `{Type}/{id}`: the objects and arrays
    on the way to a rewritten reference are copies, everything else is shared (most entries
    have none, and copying every resource cost as much as validating it)."""
    if isinstance(value, list):
        copied: list[Any] | None = None
        for n, item in enumerate(value):
            if isinstance(item, dict | list):
                new = _resolve_references(item, targets, unresolved)
                if new is not item:
                    copied = copied if copied is not None else list(value)
                    copied[n] = new
        return value if copied is None else copied
    if not isinstance(value, dict):
        return value
    changed: dict[str, Any] | None = None
    for key, item in value.items():
        if isinstance(item, dict | list):
            new = _resolve_references(item, targets, unresolved)
            if new is not item:
                changed = changed if changed is not None else dict(value)
                changed[key] = new
    reference = value.get("reference")
    if isinstance(reference, str):
        if reference in targets:
            changed = changed if changed is not None else dict(value)
            changed["reference"] = targets[reference]
        elif reference.startswith(_LOCAL_URNS):
            unresolved.append(reference)
    return value if changed is None else changed


# --- answers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryResult:
    """What ingest did with one resource: the answer for one transaction-response entry.

    `unchanged` means identical content was already stored as `version` (nothing new was
    stored); `record_id` is the on-chain record id (0x hex) of that version and
    `anchor_status` the state of its anchoring (e.g. "pending", "anchored").
    """

    resource_type: str
    resource_id: str
    version: int
    created: bool
    unchanged: bool
    record_id: str
    anchor_status: str

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError("versions start at 1")
        if self.created and self.unchanged:
            raise ValueError("a created resource cannot be unchanged")


def transaction_response(results: Iterable[EntryResult]) -> dict[str, Any]:
    """A FHIR R4 `transaction-response` Bundle: one entry per result, in request order."""
    entries = [{"response": _entry_response(result)} for result in results]
    return {"resourceType": "Bundle", "type": "transaction-response"} | (
        {"entry": entries} if entries else {}
    )


def _entry_response(result: EntryResult) -> dict[str, Any]:
    if result.unchanged:
        note = f"identical to version {result.version}: nothing new was stored"
    else:
        note = f"stored as record {result.record_id}; anchoring {result.anchor_status}"
    return {
        "status": "201 Created" if result.created else "200 OK",
        "location": f"{result.resource_type}/{result.resource_id}/_history/{result.version}",
        "etag": f'W/"{result.version}"',
        "outcome": operation_outcome([Issue("informational", note, severity="information")]),
    }


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """A FHIR R4 OperationOutcome listing `issues` (at least one)."""
    listed = [_outcome_issue(issue) for issue in issues]
    if not listed:
        raise ValueError("an OperationOutcome needs at least one issue")
    return {"resourceType": "OperationOutcome", "issue": listed}


def _outcome_issue(issue: Issue) -> dict[str, Any]:
    shown: dict[str, Any] = {"severity": issue.severity, "code": issue.code, "diagnostics": issue.diagnostics}
    if issue.expression:
        shown["expression"] = [issue.expression]
    return shown
