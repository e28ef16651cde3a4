"""The OpenAPI document is a complete reference: every operation summarised and described, every
body with an example, every refusal documented in its real shape, and every example valid
against its own schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from careledger.api import examples
from careledger.api.app import create_app
from careledger.config import Settings

FIXTURES = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "fhir"
UNSIGNED = {"/health", "/ready", "/metrics"}
SIGNATURE_HEADERS = {"Signature", "Signature-Input", "Content-Digest"}
PROBLEM = "application/problem+json"
FHIR = "application/fhir+json"
Operation = tuple[str, str, dict[str, Any]]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def _operations(spec: dict[str, Any]) -> list[Operation]:
    return [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def _named(path: str, method: str) -> str:
    return f"{method.upper()} {path}"


def _examples(media: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if "example" in media:
        yield "example", media["example"]
    for name, example in media.get("examples", {}).items():
        yield name, example["value"]


def _validator(spec: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator whose #/components/... references resolve in the document."""
    return Draft202012Validator({**schema, "components": spec["components"]})


def test_every_operation_has_summary_and_description(spec: dict[str, Any]) -> None:
    operations = _operations(spec)
    assert len(operations) == 17
    for path, method, op in operations:
        assert op.get("summary", "").strip(), f"{_named(path, method)} has no summary"
        assert op.get("description", "").strip(), f"{_named(path, method)} has no description"


def test_every_request_body_has_a_schema_and_an_example(spec: dict[str, Any]) -> None:
    bodies = 0
    for path, method, op in _operations(spec):
        if "requestBody" not in op:
            continue
        bodies += 1
        content = op["requestBody"]["content"]
        assert content, f"{_named(path, method)} documents a body without a media type"
        for media_type, media in content.items():
            assert "schema" in media, f"{_named(path, method)} {media_type}: no schema"
            assert list(_examples(media)), f"{_named(path, method)} {media_type}: no example"
    assert bodies == 7


def test_every_operation_documents_its_refusals(spec: dict[str, Any]) -> None:
    for path, method, op in _operations(spec):
        statuses = {int(s) for s in op["responses"]}
        assert any(200 <= s < 300 for s in statuses), f"{_named(path, method)} documents no success"
        refusals = {s for s in statuses if 400 <= s < 500}
        assert 413 in refusals, f"{_named(path, method)} omits 413 (every request has a size limit)"
        if path in UNSIGNED:
            continue
        assert {401} <= refusals, f"{_named(path, method)} does not document 401"
        assert 503 in statuses, f"{_named(path, method)} does not document 503"
        if "requestBody" in op:
            assert {400, 413} <= refusals, f"{_named(path, method)} takes a body but omits 400/413"


def test_every_response_has_a_schema_and_an_example(spec: dict[str, Any]) -> None:
    for path, method, op in _operations(spec):
        for status, response in op["responses"].items():
            where = f"{_named(path, method)} {status}"
            assert response.get("description"), f"{where}: no description"
            assert response.get("content"), f"{where}: no content"
            for media_type, media in response["content"].items():
                assert "schema" in media, f"{where} {media_type}: no schema"
                assert list(_examples(media)), f"{where} {media_type}: no example"


def test_refusals_come_in_their_real_shape(spec: dict[str, Any]) -> None:
    """Problem documents everywhere, OperationOutcomes under /fhir (api/problems.py); the
    example's status is the one it documents."""
    for path, method, op in _operations(spec):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            media_type = FHIR if path.startswith("/fhir") else PROBLEM
            where = f"{_named(path, method)} {status}"
            if path == "/ready":
                continue  # not ready: the readiness body itself
            assert media_type in response["content"], f"{where}: not {media_type}"
            media = response["content"][media_type]
            shape = "OperationOutcome" if media_type == FHIR else "Problem"
            assert media["schema"] == {"$ref": f"#/components/schemas/{shape}"}, where
            for _, example in _examples(media):
                if shape == "Problem":
                    assert example["status"] == int(status), where
                    assert example["type"].startswith("urn:careledger:problem:"), where
                else:
                    assert example["issue"][0]["severity"] == "error", where


def test_every_example_validates_against_its_schema(spec: dict[str, Any]) -> None:
    checked = 0
    for path, method, op in _operations(spec):
        media_objects = [("request", op.get("requestBody", {}).get("content", {}))]
        media_objects += [(status, r.get("content", {})) for status, r in op["responses"].items()]
        for part, content in media_objects:
            for media_type, media in content.items():
                validator = _validator(spec, media["schema"])
                for name, example in _examples(media):
                    errors = [e.message for e in validator.iter_errors(example)]
                    assert not errors, f"{_named(path, method)} {part} {media_type} {name}: {errors}"
                    checked += 1
        for parameter in op.get("parameters", []):
            if "example" in parameter:
                _validator(spec, parameter["schema"]).validate(parameter["example"])
                checked += 1
    assert checked > 100


def test_example_check_catches_an_invalid_example(spec: dict[str, Any]) -> None:
    """The validation above is not vacuous: a Problem without its detail fails it."""
    schema = spec["paths"]["/jobs/{job_id}"]["get"]["responses"]["404"]["content"][PROBLEM]["schema"]
    broken = {k: v for k, v in examples.PROBLEMS[404].items() if k != "detail"}
    assert list(_validator(spec, schema).iter_errors(broken))


def test_signature_headers_are_the_security_scheme_of_signed_routes(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert set(schemes) == SIGNATURE_HEADERS
    for scheme in schemes.values():
        assert scheme["type"] == "apiKey" and scheme["in"] == "header", scheme
        assert scheme["name"] in SIGNATURE_HEADERS and scheme["description"], scheme
    for path, method, op in _operations(spec):
        if path in UNSIGNED:
            assert op["security"] == [], f"{_named(path, method)} needs no signature"
        else:
            # One requirement naming all three headers: they go together.
            assert [set(r) for r in op["security"]] == [SIGNATURE_HEADERS], _named(path, method)


def test_record_routes_document_their_specific_statuses(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert {"200", "201", "400", "409", "413", "415", "422"} <= set(paths["/fhir"]["post"]["responses"])
    read = paths["/records/{record_id}"]["get"]
    assert {"403", "404", "409", "410", "422", "429"} <= set(read["responses"])
    assert {"CareLedger-Commitment", "CareLedger-Salt"} <= set(read["responses"]["200"]["headers"])
    headers = {p["name"] for p in read["parameters"] if p["in"] == "header"}
    assert headers == {"careledger-break-glass-reason", "careledger-acting-user"}
    assert {"404", "409", "410"} <= set(paths["/records/{record_id}/erasure"]["post"]["responses"])
    for relayed in ("/consents/grants", "/consents/revocations", "/enrollments/{patient}/signature"):
        assert {"200", "202", "422"} <= set(paths[relayed]["post"]["responses"]), relayed


def test_fhir_examples_are_the_curated_hl7_fixtures() -> None:
    bundle = json.loads((FIXTURES / "transaction-bundle.json").read_text())
    entries = {(e["resource"]["resourceType"], e["resource"]["id"]): e for e in bundle["entry"]}
    shown = examples.FHIR_TRANSACTION_BUNDLE
    assert shown["type"] == "transaction" and shown["id"] == bundle["id"]
    assert shown["entry"] == [entries["Observation", "f001"], entries["Claim", "100150"]]
    assert entries["Observation", "f001"]["resource"] == examples.FHIR_OBSERVATION

    consent = json.loads((FIXTURES / "consent-permit.json").read_text())
    consent["provision"]["provision"] = consent["provision"]["provision"][:1]
    assert consent == examples.FHIR_CONSENT


def test_openapi_document_is_served_as_generated() -> None:
    app = create_app(Settings())
    assert app.openapi() is app.openapi()  # built once
    assert json.loads(json.dumps(app.openapi())) == app.openapi()
