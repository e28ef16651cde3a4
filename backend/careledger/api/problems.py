"""The one table that maps domain errors to HTTP statuses, and the bodies errors come back in.

FHIR endpoints answer with an OperationOutcome (application/fhir+json); the others with a
problem document (RFC 9457, application/problem+json). Messages are the errors' own one-line
texts; no traceback and no stored data ever leaves this way.
"""

from __future__ import annotations

import math
from typing import Any

from careledger import errors
from careledger.services.fhir import FhirInvalid, PatientMismatch

# Most specific first: the first class an error is an instance of decides.
STATUS: list[tuple[type[Exception], int, str]] = [
    (errors.NonceReused, 401, "replayed-nonce"),
    (errors.AuthenticationFailed, 401, "unauthenticated"),
    (errors.RateLimited, 429, "rate-limited"),
    (errors.Forbidden, 403, "forbidden"),
    (errors.NotFound, 404, "not-found"),
    (errors.Gone, 410, "gone"),
    (errors.RetentionHold, 409, "retention-hold"),
    (errors.Conflict, 409, "conflict"),
    (errors.StoreConflict, 409, "conflict"),
    (PatientMismatch, 422, "patient-mismatch"),
    (FhirInvalid, 400, "invalid-fhir"),
    (errors.InvalidRequest, 422, "invalid-request"),
    (errors.ContractReverted, 422, "refused-by-contract"),
    (errors.ChainUnavailable, 503, "chain-unavailable"),
    (errors.StoreUnavailable, 503, "store-unavailable"),
    (errors.ChainError, 502, "chain-error"),
]

FHIR_CONTENT_TYPE = "application/fhir+json"
PROBLEM_CONTENT_TYPE = "application/problem+json"
_FHIR_CODES = {
    401: "security",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    410: "deleted",
    429: "throttled",
}


def status_of(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, errors.HttpRefusal):
        return exc.status, {404: "not-found", 405: "method-not-allowed"}.get(exc.status, "bad-request")
    for cls, status, kind in STATUS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "internal"


# When to retry a refusal that passes by itself: the chain or the store back (503), the
# break-glass window moving on (429; at most an hour when the error does not say).
RETRY_AFTER_S = {429: 3600.0, 503: 5.0}


def retry_headers(exc: Exception, status: int) -> dict[str, str] | None:
    """The Retry-After header (RFC 9110, whole seconds) for a 429 or 503, None otherwise."""
    default = RETRY_AFTER_S.get(status)
    if default is None:
        return None
    seconds = getattr(exc, "retry_after_s", None) or default
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def problem(status: int, kind: str, detail: str) -> dict[str, Any]:
    return {
        "type": f"urn:careledger:problem:{kind}",
        "title": kind.replace("-", " "),
        "status": status,
        "detail": detail,
    }


def outcome(status: int, detail: str, code: str | None = None) -> dict[str, Any]:
    """A one-issue OperationOutcome."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": code or _FHIR_CODES.get(status, "processing"),
                "diagnostics": detail,
            }
        ],
    }
