from __future__ import annotations

import copy
import importlib.util
import json
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.codes import Category
from careledger.services.fhir import (
    EntryResult,
    FhirInvalid,
    Issue,
    PatientMismatch,
    canonical_json,
    category_of,
    operation_outcome,
    parse_json,
    reference_canonical_json,
    split_transaction,
    transaction_response,
    validate,
)
from tests.backend.unit.services.fhir_files import FIXTURES, load

PATIENT_UUID = "urn:uuid:4f1c8b9e-2d7a-4c1e-9b3f-6a5d2e8c7b10"


def _transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _put(resource: dict[str, Any], **extra: Any) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"resource": resource, "request": {"method": "PUT", "url": url}, **extra}


def _observation(id_: str = "glucose-1", patient: str = "Patient/example", **elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "15074-8"}]},
        "subject": {"reference": patient},
        **elements,
    }


def _refusal(bundle: dict[str, Any], **kwargs: Any) -> FhirInvalid:
    with pytest.raises(FhirInvalid) as caught:
        split_transaction(bundle, **kwargs)
    return caught.value


def test_split_transaction_returns_the_fixture_entries_in_order() -> None:
    entries = split_transaction(load("transaction-bundle.json"), patient="Patient/example")
    assert [(e.method, e.resource_type, e.resource_id) for e in entries] == [
        ("PUT", "Patient", "example"),
        ("PUT", "Encounter", "example"),
        ("PUT", "Condition", "example"),
        ("PUT", "Observation", "example"),
        ("PUT", "Observation", "f001"),
        ("PUT", "Observation", "f005"),
        ("PUT", "MedicationRequest", "medrx002"),
        ("PUT", "AllergyIntolerance", "example"),
        ("PUT", "Immunization", "example"),
        ("PUT", "Procedure", "example"),
        ("PUT", "DiagnosticReport", "ultrasound"),
        ("PUT", "DocumentReference", "example"),
        ("PUT", "Coverage", "9876B1"),
        ("PUT", "Claim", "100150"),
        ("PUT", "ExplanationOfBenefit", "EB3500"),
    ]
    assert entries[4].full_url == "https://clinic-a.example.org/fhir/Observation/f001"
    glucose = entries[4].resource
    assert glucose["code"]["coding"][0]["code"] == "15074-8"  # a lab result, LOINC glucose
    assert glucose["valueQuantity"]["value"] == Decimal("6.3")
    assert {category_of(e.resource_type) for e in entries} >= {Category.CLAIMS, Category.OBSERVATIONS}


def test_transaction_bundle_fixture_is_its_documented_derivation() -> None:
    spec = importlib.util.spec_from_file_location("derive", FIXTURES / "derive_transaction_bundle.py")
    assert spec is not None and spec.loader is not None
    derive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(derive)
    assert (FIXTURES / "transaction-bundle.json").read_text(encoding="utf-8") == derive.derive()


def test_split_transaction_accepts_the_empty_transaction_of_the_signature_vector() -> None:
    assert split_transaction(parse_json(b'{"resourceType":"Bundle","type":"transaction","entry":[]}')) == []


def test_split_transaction_refuses_the_official_example_entry_by_entry() -> None:
    error = _refusal(load("Bundle-bundle-transaction.json"))
    assert [(i.code, i.expression) for i in error.issues] == [
        ("required", "Bundle.entry[0].resource.id"),  # POST without a client id
        ("not-supported", "Bundle.entry[1].request"),  # ifNoneExist
        ("not-supported", "Bundle.entry[3].request"),  # conditional update
        ("not-supported", "Bundle.entry[4].request"),  # ifMatch
        ("not-supported", "Bundle.entry[5].request.method"),  # DELETE
        ("not-supported", "Bundle.entry[6].request.method"),
        ("required", "Bundle.entry[7].resource.id"),  # POST ValueSet/$lookup: Parameters without id
        ("not-supported", "Bundle.entry[8].request.method"),  # GET
        ("not-supported", "Bundle.entry[9].request.method"),
    ]


@pytest.mark.parametrize("kind", ["batch", "collection", "document", "transaction-response"])
def test_split_transaction_refuses_other_bundle_types(kind: str) -> None:
    error = _refusal(_transaction(_put(_observation()), kind=kind))
    assert (error.code, error.issues[0].expression) == ("not-supported", "Bundle.type")


def test_validate_refuses_bundle_that_is_not_a_transaction() -> None:
    with pytest.raises(FhirInvalid, match="only 'transaction'"):
        validate(_transaction(kind="batch"))


def test_split_transaction_refuses_two_entries_for_the_same_resource() -> None:
    error = _refusal(_transaction(_put(_observation()), _put(_observation(status="amended"))))
    assert (error.code, error.issues[0].expression) == ("invalid", "Bundle.entry[1]")
    assert "Observation/glucose-1 is already in entry[0]" in str(error)


def test_split_transaction_refuses_url_that_disagrees_with_the_resource() -> None:
    entry = _put(_observation())
    entry["request"]["url"] = "Observation/other"
    error = _refusal(_transaction(entry))
    assert (error.code, error.issues[0].expression) == ("invalid", "Bundle.entry[0].request.url")


def test_split_transaction_refuses_post_without_a_client_id() -> None:
    resource = _observation()
    del resource["id"]
    error = _refusal(
        _transaction({"resource": resource, "request": {"method": "POST", "url": "Observation"}})
    )
    assert (error.code, error.issues[0].expression) == ("required", "Bundle.entry[0].resource.id")


def test_split_transaction_accepts_post_with_a_client_id() -> None:
    entry = {"resource": _observation(), "request": {"method": "POST", "url": "Observation"}}
    [accepted] = split_transaction(_transaction(entry))
    assert (accepted.method, accepted.resource_id, accepted.full_url) == ("POST", "glucose-1", None)


def test_split_transaction_refuses_entry_without_request() -> None:
    error = _refusal(_transaction({"resource": _observation()}))
    assert (error.code, error.issues[0].expression) == ("required", "Bundle.entry[0].request")


def test_split_transaction_refuses_full_url_that_disagrees_with_the_id() -> None:
    entry = _put(_observation(), fullUrl="https://clinic-a.example.org/fhir/Observation/other")
    error = _refusal(_transaction(entry))
    assert (error.code, error.issues[0].expression) == ("invalid", "Bundle.entry[0].fullUrl")


def test_split_transaction_rewrites_references_to_bundle_uuids() -> None:
    patient = {"resourceType": "Patient", "id": "example"}
    bundle = _transaction(
        _put(patient, fullUrl=PATIENT_UUID),
        _put(_observation(patient=PATIENT_UUID), fullUrl="urn:uuid:9a0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"),
    )
    original = copy.deepcopy(bundle)
    entries = split_transaction(bundle, patient="Patient/example")
    assert entries[1].resource["subject"] == {"reference": "Patient/example"}
    assert bundle == original


def test_split_transaction_refuses_reference_to_an_unknown_uuid() -> None:
    error = _refusal(_transaction(_put(_observation(patient=PATIENT_UUID))))
    assert (error.code, error.issues[0].expression) == ("invalid", "Bundle.entry[0].resource")


def test_split_transaction_refuses_resource_type_that_is_not_a_record() -> None:
    organization = load("Organization-1.json")
    error = _refusal(_transaction(_put(_observation()), _put(organization)))
    assert (error.code, error.issues[0].expression) == (
        "not-supported",
        "Bundle.entry[1].resource.resourceType",
    )


def test_split_transaction_refuses_entry_about_another_patient() -> None:
    bundle = _transaction(_put(_observation()), _put(_observation("glucose-2", patient="Patient/pat1")))
    with pytest.raises(PatientMismatch) as caught:
        split_transaction(bundle, patient="Patient/example")
    assert str(caught.value) == (
        "Bundle.entry[1].resource.subject: is about Patient/pat1, but this request is for Patient/example"
    )


def test_split_transaction_refuses_entry_naming_no_patient() -> None:
    resource = _observation()
    del resource["subject"]
    error = _refusal(_transaction(_put(resource)), patient="Patient/example")
    assert (error.code, error.issues[0].expression) == ("required", "Bundle.entry[0].resource.subject")


def test_split_transaction_reports_invalid_resource_at_its_entry() -> None:
    resource = _observation()
    del resource["status"]
    error = _refusal(_transaction(_put(_observation("ok")), _put(resource)))
    assert (error.code, error.issues[0].expression) == ("required", "Bundle.entry[1].resource.status")


def test_split_transaction_refuses_unknown_entry_resource_type() -> None:
    entry = {"resource": {"resourceType": "Foo", "id": "1"}, "request": {"method": "PUT", "url": "Foo/1"}}
    error = _refusal(_transaction(entry))
    assert (error.code, error.issues[0].expression) == (
        "not-supported",
        "Bundle.entry[0].resource.resourceType",
    )


def test_canonical_json_is_identical_for_a_retry() -> None:
    sent = (FIXTURES / "r4-examples" / "Observation-f001.json").read_bytes()
    retry = _reformatted(sent)
    assert sent != retry
    assert canonical_json(parse_json(sent)) == canonical_json(parse_json(retry))


def _reformatted(body: bytes) -> bytes:
    """The same JSON, keys reversed and re-indented, as another client would send it (its decimals
    survive a float round trip)."""

    def reverse(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reverse(value[k]) for k in reversed(list(value))}
        return [reverse(v) for v in value] if isinstance(value, list) else value

    return json.dumps(reverse(json.loads(body)), indent=1).encode()


def test_canonical_json_ignores_server_managed_meta() -> None:
    stamped = _observation(meta={"versionId": "7", "lastUpdated": "2026-01-01T00:00:00Z"})
    assert canonical_json(stamped) == canonical_json(_observation())
    labelled = {
        "versionId": "7",
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
    }
    assert b'"security"' in canonical_json(_observation(meta=labelled))
    assert b"versionId" not in canonical_json(_observation(meta=labelled))


@pytest.mark.parametrize(
    "change",
    [
        {"status": "amended"},
        {"valueQuantity": {"value": Decimal("6.30")}},  # precision is significant in FHIR decimals
        {
            "text": {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">6.3 mmol/L</div>',
            }
        },
    ],
)
def test_canonical_json_differs_for_a_real_change(change: dict[str, Any]) -> None:
    before = _observation(valueQuantity={"value": Decimal("6.3")})
    assert canonical_json(before) != canonical_json(before | change)


def test_canonical_json_is_sorted_compact_utf8() -> None:
    resource = {
        "resourceType": "Patient",
        "name": [{"text": "Zoë"}],
        "active": True,
        "meta": {"lastUpdated": "x"},
    }
    resource["extension"] = [{"url": "u", "valueDecimal": Decimal("1.50")}, {"url": "v", "valueInteger": 2}]
    assert (
        canonical_json(resource)
        == (
            '{"active":true,"extension":[{"url":"u","valueDecimal":1.50},{"url":"v","valueInteger":2}],'
            '"name":[{"text":"Zoë"}],"resourceType":"Patient"}'
        ).encode()
    )


def test_canonical_json_refuses_non_json_values() -> None:
    with pytest.raises(TypeError):
        canonical_json({"resourceType": "Patient", "x": object()})
    with pytest.raises(ValueError):
        canonical_json({"resourceType": "Patient", "x": float("nan")})
    with pytest.raises(ValueError, match="NaN"):
        canonical_json({"resourceType": "Patient", "x": Decimal("Infinity")})


RESULTS = [
    EntryResult(
        "Patient",
        "example",
        1,
        created=True,
        unchanged=False,
        record_id="0x" + "aa" * 32,
        anchor_status="pending",
    ),
    EntryResult(
        "Observation",
        "f001",
        3,
        created=False,
        unchanged=False,
        record_id="0x" + "bb" * 32,
        anchor_status="pending",
    ),
    EntryResult(
        "Claim",
        "100150",
        2,
        created=False,
        unchanged=True,
        record_id="0x" + "cc" * 32,
        anchor_status="anchored",
    ),
]


def test_transaction_response_validates_with_r4b() -> None:
    response = transaction_response(RESULTS)
    get_fhir_model_class("Bundle").model_validate(response)
    assert response["type"] == "transaction-response"


def test_transaction_response_answers_each_entry_in_order() -> None:
    responses = [entry["response"] for entry in transaction_response(RESULTS)["entry"]]
    assert [(r["status"], r["location"], r["etag"]) for r in responses] == [
        ("201 Created", "Patient/example/_history/1", 'W/"1"'),
        ("200 OK", "Observation/f001/_history/3", 'W/"3"'),
        ("200 OK", "Claim/100150/_history/2", 'W/"2"'),
    ]
    notes = [r["outcome"]["issue"][0]["diagnostics"] for r in responses]
    assert notes[0] == f"stored as record 0x{'aa' * 32}; anchoring pending"
    assert notes[2] == "identical to version 2: nothing new was stored"


def test_transaction_response_has_the_shape_of_the_official_example() -> None:
    official = load("Bundle-bundle-response.json")["entry"][0]["response"]
    ours = transaction_response(RESULTS[:1])["entry"][0]["response"]
    assert official["status"] == ours["status"]
    assert set(ours) <= set(official)


def test_transaction_response_to_an_empty_transaction_has_no_entries() -> None:
    response = transaction_response([])
    get_fhir_model_class("Bundle").model_validate(response)
    assert "entry" not in response


def test_entry_result_refuses_created_and_unchanged() -> None:
    with pytest.raises(ValueError, match="cannot be unchanged"):
        EntryResult(
            "Patient", "p", 1, created=True, unchanged=True, record_id="0x00", anchor_status="pending"
        )


def test_operation_outcome_of_a_refusal_validates_with_r4b() -> None:
    with pytest.raises(FhirInvalid) as caught:
        split_transaction(load("Bundle-bundle-transaction.json"))
    outcome = operation_outcome(caught.value.issues)
    get_fhir_model_class("OperationOutcome").model_validate(outcome)
    assert outcome["issue"][0] == {
        "severity": "error",
        "code": "required",
        "diagnostics": "POST needs a client-assigned id: PUT Patient/{id}",
        "expression": ["Bundle.entry[0].resource.id"],
    }


def test_operation_outcome_refuses_no_issues() -> None:
    with pytest.raises(ValueError, match="at least one issue"):
        operation_outcome([])


def test_issue_refuses_codes_outside_fhir_issue_type() -> None:
    with pytest.raises(ValueError, match="IssueType"):
        Issue("bad-json", "x")
    with pytest.raises(ValueError, match="IssueSeverity"):
        Issue("invalid", "x", severity="critical")


_JSON_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.decimals(allow_nan=False, allow_infinity=False, places=None)
    | _JSON_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_JSON_TEXT, children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_JSON_TEXT, _JSON_VALUES, max_size=6))
def test_canonical_json_is_byte_for_byte_the_reference_encoding(resource: dict[str, Any]) -> None:
    """orjson writes what the Python reference writes, for any JSON parse_json can return
    (a stored record's commitment and its idempotency check depend on these bytes)."""
    assert canonical_json(resource) == reference_canonical_json(resource)
    # what ingest asks for: the same bytes without the float walk, from the parser's output
    reparsed = parse_json(reference_canonical_json(resource))
    assert canonical_json(reparsed, parsed=True) == reference_canonical_json(resource)
