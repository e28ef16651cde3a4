"""The gateway's OpenAPI document: refusal bodies, FHIR shapes, the signature scheme.

Routes declare what they can answer with `answers(...)` and their request examples with
`json_body(...)` / `fhir_body(...)`; `document(app)` builds the document once, adds the
schemas that are not Pydantic models (FHIR resources, OperationOutcome) and marks every
route that depends on a signed request with the RFC 9421 security requirement.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from careledger.api import examples, schemas
from careledger.api.problems import FHIR_CONTENT_TYPE, PROBLEM_CONTENT_TYPE

REF = "#/components/schemas/"

# What each refusal means, for the documentation; routes may say more.
MEANING: dict[int, str] = {
    400: "The body is not readable: not JSON in UTF-8, or (FHIR) not valid FHIR R4",
    401: "Missing, malformed, stale, replayed or foreign signature (docs/signing.md §10)",
    403: "The signer may not do this: not an active member, wrong role, or not the patient concerned",
    404: "No such record, patient, consent or job here",
    409: "The request conflicts with the state",
    410: "The record was erased at its patient's request",
    413: "The body exceeds the gateway's limit (checked before the signature)",
    415: "Not application/fhir+json",
    422: "Invalid request: a parameter or field out of its domain, or refused by a contract",
    429: "Break-glass limit reached for this member in the last hour",
    503: "The chain or the database is unavailable; retry after Retry-After seconds",
}

SIGNATURE_HEADERS = ("Signature", "Signature-Input", "Content-Digest")
SECURITY_SCHEMES: dict[str, Any] = {
    "Signature": {
        "type": "apiKey",
        "in": "header",
        "name": "Signature",
        "description": "RFC 9421 `sig1=:<base64 r‖s‖v>:`: EIP-191 personal_sign by the key named in "
        "`keyid` over the signature base (docs/signing.md §7). Sent together with Signature-Input "
        "and Content-Digest.",
    },
    "Signature-Input": {
        "type": "apiKey",
        "in": "header",
        "name": "Signature-Input",
        "description": 'RFC 9421 `sig1=("@method" "@target-uri" "content-digest" [careledger-*...])'
        ';created=;expires=;nonce="";keyid="<EIP-55 address>";tag="careledger"` '
        "(docs/signing.md §4). Every careledger-* header sent must be covered.",
    },
    "Content-Digest": {
        "type": "apiKey",
        "in": "header",
        "name": "Content-Digest",
        "description": "RFC 9530 `sha-256=:<base64 SHA-256 of the body>:`, the empty body's digest "
        "on a request without one (docs/signing.md §5).",
    },
}
SIGNED: list[dict[str, list[str]]] = [{name: [] for name in SIGNATURE_HEADERS}]

OPERATION_OUTCOME: dict[str, Any] = {
    "title": "OperationOutcome",
    "description": "A FHIR R4 OperationOutcome: how the /fhir routes answer a refusal.",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string", "description": "FHIR IssueType code"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
FHIR_RESOURCE: dict[str, Any] = {
    "title": "FhirResource",
    "description": "A FHIR R4 resource in JSON (validated by the gateway against the R4 models).",
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}},
    "additionalProperties": True,
}
FHIR_BUNDLE: dict[str, Any] = {
    "title": "FhirBundle",
    "description": "A FHIR R4 Bundle (transaction-response or searchset).",
    "type": "object",
    "required": ["resourceType", "type"],
    "properties": {
        "resourceType": {"const": "Bundle"},
        "type": {"enum": ["transaction-response", "searchset"]},
        "total": {"type": "integer", "minimum": 0},
        "entry": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}
EXTRA_SCHEMAS = {
    "OperationOutcome": OPERATION_OUTCOME,
    "FhirResource": FHIR_RESOURCE,
    "FhirBundle": FHIR_BUNDLE,
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def answers(
    refusals: dict[int, str | None],
    *,
    fhir: bool = False,
    success: dict[str, dict[str, Any]] | None = None,
    **successes: dict[str, Any],
) -> dict[int | str, dict[str, Any]]:
    """A route's documented responses: each refusal status with its body's schema and an
    example (a problem document, or an OperationOutcome under /fhir), plus successes given
    as `s200=…` (merged with what FastAPI derives from the response model)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status, meaning in sorted(refusals.items()):
        if fhir:
            content = {
                FHIR_CONTENT_TYPE: {"schema": ref("OperationOutcome"), "example": examples.OUTCOMES[status]}
            }
        else:
            content = {PROBLEM_CONTENT_TYPE: {"schema": ref("Problem"), "example": examples.PROBLEMS[status]}}
        documented[status] = {"description": meaning or MEANING[status], "content": content}
        if status == 503:
            documented[status]["headers"] = RETRY_AFTER
    for key, response in {**(success or {}), **successes}.items():
        status = int(key.removeprefix("s"))
        if status in documented:  # a status both refused and answered in another shape (jobs: 422)
            documented[status]["content"].update(response.get("content", {}))
        else:
            documented[status] = response
    return documented


def json_answer(description: str, schema: str | None, **named: Any) -> dict[str, Any]:
    """A JSON success response; `schema` None when the response model documents it already."""
    media: dict[str, Any] = {"examples": {k: {"value": v} for k, v in named.items()}}
    if schema is not None:
        media["schema"] = ref(schema)
    return {"description": description, "content": {"application/json": media}}


def fhir_answer(description: str, schema: dict[str, Any], **named: Any) -> dict[str, Any]:
    media = {"schema": schema, "examples": {k: {"value": v} for k, v in named.items()}}
    return {"description": description, "content": {FHIR_CONTENT_TYPE: media}}


def json_body(**named: tuple[str, Any]) -> dict[str, Any]:
    """openapi_extra for a Pydantic body: named examples, (summary, value) each."""
    return {
        "requestBody": {
            "content": {
                "application/json": {
                    "examples": {k: {"summary": s, "value": v} for k, (s, v) in named.items()}
                }
            }
        }
    }


def fhir_body(description: str, **named: tuple[str, Any]) -> dict[str, Any]:
    """openapi_extra for a route that reads FHIR JSON itself (no Pydantic body)."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                FHIR_CONTENT_TYPE: {
                    "schema": ref("FhirResource"),
                    "examples": {k: {"summary": s, "value": v} for k, (s, v) in named.items()},
                }
            },
        }
    }


def document(app: FastAPI, *signed_by: object) -> dict[str, Any]:
    """The OpenAPI document of `app`; operations of routes depending on `signed_by` need a signature."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = spec.setdefault("components", {})
    models = components.setdefault("schemas", {})
    # FastAPI's default 422 (HTTPValidationError) is not our shape; where a route documents no 422
    # of its own, none can happen (its only parameters are strings in the path).
    for operations in spec["paths"].values():
        for operation in operations.values():
            if "HTTPValidationError" in str(operation["responses"].get("422", "")):
                del operation["responses"]["422"]
    models.pop("HTTPValidationError", None)
    models.pop("ValidationError", None)
    models.update(EXTRA_SCHEMAS)
    models["Problem"] = schemas.Problem.model_json_schema(ref_template=REF + "{model}")
    components["securitySchemes"] = SECURITY_SCHEMES
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        signed = any(d.call in signed_by for d in route.dependant.dependencies)
        for method in route.methods or ():
            operation = spec["paths"][route.path_format][method.lower()]
            operation["security"] = SIGNED if signed else []
            _restore_examples(operation, route)
    app.openapi_schema = spec
    return spec


def _restore_examples(operation: dict[str, Any], route: APIRoute) -> None:
    """Put the examples back as given: FastAPI drops their null members (exclude_none), which
    would make an example with a required nullable field contradict its own schema."""
    for status, response in route.responses.items():
        for media, given in response.get("content", {}).items():
            _copy_examples(given, operation["responses"][str(status)]["content"][media])
    extra = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    for media, given in extra.items():
        _copy_examples(given, operation["requestBody"]["content"][media])
    for given in (route.openapi_extra or {}).get("parameters", []):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == given["name"] and "example" in given:
                parameter["example"] = given["example"]


def _copy_examples(given: dict[str, Any], documented: dict[str, Any]) -> None:
    if "example" in given:
        documented["example"] = given["example"]
    if "examples" in given:
        documented["examples"] = given["examples"]
