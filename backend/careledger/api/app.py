"""The gateway's HTTP API: thin routes over the services, every one behind a signature
check except the operational probes (/health, /ready, /metrics), which carry no data."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from careledger import errors, logs
from careledger.api import examples, schemas
from careledger.api.openapi import answers, document, fhir_answer, fhir_body, json_answer, json_body, ref
from careledger.api.problems import (
    FHIR_CONTENT_TYPE,
    PROBLEM_CONTENT_TYPE,
    outcome,
    problem,
    retry_headers,
    status_of,
)
from careledger.codes import Purpose, categories_of, purposes_of
from careledger.config import Settings
from careledger.services import access, accounting, consent, enrollment, erasure, fhir, ingest
from careledger.services.audit_export import ExportedRecord, export_records
from careledger.services.gateway import Gateway, build_gateway, prepare_to_serve
from careledger.services.jobs import JobStatus, job_status
from careledger.services.records import list_records
from careledger.services.requests import Principal, identify, spend_nonce_async
from careledger.services.status import readiness

log = logging.getLogger("careledger.api")
FHIR_PATHS = ("/fhir",)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "careledger_http_requests_total",
            "HTTP requests",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "careledger_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.queue = Gauge(
            "careledger_queue_depth", "Work waiting for the relayer", ["queue"], registry=self.registry
        )
        self.anchor_lag = Gauge(
            "careledger_anchor_lag_seconds",
            "Age of the oldest record not yet anchored",
            registry=self.registry,
        )
        self.chain_head = Gauge("careledger_chain_head", "Latest block seen", registry=self.registry)


class Observe:
    """Counts, times and logs every request by route template (plain ASGI: Starlette's
    BaseHTTPMiddleware costs a task and a stream per request, more than a cached read)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception goes on to the error handler

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - started
            name = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(name, scope["method"], str(status)).inc()
            self.metrics.latency.labels(name).observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                fields = {"method": scope["method"], "route": name, "status": status,
                          "ms": round(elapsed * 1000, 2)}  # fmt: skip
                log.info("http", extra={"fields": fields})


class BodyLimit:
    """Refuse bodies over the limit with 413 before reading them whole (Content-Length or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(scope, send, self.limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(scope, send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    detail = f"the body exceeds {limit} bytes"
    fhir_route = scope["path"].startswith(FHIR_PATHS)
    body = outcome(413, detail, "too-long") if fhir_route else problem(413, "too-large", detail)
    response = JSONResponse(body, 413, media_type=FHIR_CONTENT_TYPE if fhir_route else PROBLEM_CONTENT_TYPE)
    await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def error_response(request: Request, exc: Exception) -> JSONResponse:
    status, kind = status_of(exc)
    if status == 500:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        log.error("unexpected error", extra={"fields": {"route": route, "error": type(exc).__name__}})
        detail = "internal error; it was logged without the request's data"
    else:
        detail = str(exc)
    headers = retry_headers(exc, status)
    if request.url.path.startswith(FHIR_PATHS):
        body = (
            fhir.operation_outcome(exc.issues)
            if isinstance(exc, fhir.FhirInvalid)
            else outcome(status, detail)
        )
        return JSONResponse(body, status, headers=headers, media_type=FHIR_CONTENT_TYPE)
    return JSONResponse(
        problem(status, kind, detail), status, headers=headers, media_type=PROBLEM_CONTENT_TYPE
    )


async def principal(request: Request) -> Principal:
    """The dependency every data route has: a verified signer whose nonce is spent (401 otherwise).
    It runs on the event loop: the signature check is a few tens of microseconds of CPU and the
    nonce's commit is awaited (shared with concurrent requests'), so no thread is held."""
    verified: Principal | None = getattr(request.state, "principal", None)
    if verified is not None:  # SignatureFirst checked it already (its nonce is spent)
        return verified
    gw: Gateway = request.app.state.gateway
    identity = await identified(request)
    await spend_nonce_async(gw, identity)
    return identity


async def identified(request: Request) -> Principal:
    """A verified signer whose nonce is NOT spent yet: only for routes whose service spends it
    in the same commit as the request's own write (a read and its disclosure)."""
    verified: Principal | None = getattr(request.state, "principal", None)
    if verified is not None:  # SignatureFirst checked it already
        return verified
    body = await request.body()
    request.state.body = body
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    path_and_query = raw_path.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}
    return identify(
        request.app.state.gateway,
        method=request.method,
        path_and_query=path_and_query,
        body=body,
        headers=headers,
        host=headers.get("host"),
    )


Signed = Annotated[Principal, Depends(principal)]
# Signed, the nonce spent by the route's service with its own write (see `identified`).
SignedUnspent = Annotated[Principal, Depends(identified)]


class SignatureFirst(APIRoute):
    """Routes that depend on a signed request check the signature before FastAPI reads the body or
    the parameters: an unsigned or mis-signed request is refused with 401 whatever else is wrong
    with it (the fuzzer found unsigned malformed JSON answered 422), and learns nothing more.

    On a route whose service spends the nonce with its own write (`identified`), the nonce is
    spent here whenever the route answered without spending it — refused by FastAPI's own
    parameter checks, by the route, or answered some other way — so every verified request
    uses its nonce, and a replay is told so first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        check = next((d.call for d in self.dependant.dependencies if d.call in (principal, identified)), None)
        if check is None:
            return handler

        async def signature_first(request: Request) -> Response:
            signer = request.state.principal = await check(request)
            try:
                response = await handler(request)
            except Exception:
                if not signer.nonce_spent:
                    await spend_nonce_async(request.app.state.gateway, signer)
                raise
            if not signer.nonce_spent:
                await spend_nonce_async(request.app.state.gateway, signer)
            return response

        return signature_first


class FhirResponse(JSONResponse):
    """JSON under FHIR's media type (documents the /fhir routes' bodies)."""

    media_type = FHIR_CONTENT_TYPE


# The probes refuse only a body over the size limit (the limit applies to every request).
PROBE: dict[int, str | None] = {413: None}
# Refusals every signed route can answer with; `None` takes the standard meaning (openapi.MEANING).
AUTH: dict[int, str | None] = {401: None, 413: None, 503: None}
BODY: dict[int, str | None] = {400: "The body is not a JSON document in UTF-8"}
JOB = "The relayed message; 200 once mined (`done`), 202 while `pending` or `sent` (poll GET /jobs/{job})"
JOB_ANSWERS: dict[str, dict[str, Any]] = {
    "s200": json_answer("Mined: the message is on chain", None, done=examples.JOB_DONE),
    "s202": json_answer(
        "Accepted, not mined yet: poll GET /jobs/{job}", "JobPublic", sent=examples.JOB_PENDING
    ),
    "s422": json_answer("The contract refused the relayed message", "JobPublic", failed=examples.JOB_FAILED),
}


def create_app(settings: Settings | None = None, gateway: Gateway | None = None) -> FastAPI:
    """The gateway app; builds its Gateway from settings unless one is given (tests)."""
    settings = settings or Settings()
    logs.configure(settings.log_level)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        gw = gateway if gateway is not None else await run_in_threadpool(build_gateway, settings)
        app.state.gateway = gw
        await run_in_threadpool(prepare_to_serve)
        gw.start_relayer()
        yield
        await gw.db.aclose()
        if gateway is None:
            await run_in_threadpool(gw.close)

    app = FastAPI(
        title="CareLedger gateway",
        version="0.1.0",
        description="One custodian's gateway: FHIR records under patient consent, anchored on chain. "
        "Every data route needs an RFC 9421 signature (docs/signing.md).",
        lifespan=lifespan,
    )
    app.router.route_class = SignatureFirst
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Observe, metrics=metrics)
    app.state.metrics = metrics

    @app.exception_handler(errors.CareLedgerError)
    async def domain_error(request: Request, exc: errors.CareLedgerError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(
            request, errors.InvalidRequest(f"{where or 'body'}: {first.get('msg', 'invalid')}")
        )

    @app.exception_handler(StarletteHTTPException)
    async def framework_refusal(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """404 for unknown paths, 405 for wrong methods, 400 for unreadable bodies: same shapes."""
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:
            detail = "the body is not a JSON document in UTF-8"
        response = error_response(request, errors.HttpRefusal(exc.status_code, detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, exc)

    # ------------------------------------------------------------------ operations

    @app.get(
        "/health",
        tags=["operations"],
        response_model=schemas.HealthPublic,
        summary="Liveness (no data, no signature)",
        description="Answers while the process serves HTTP; says nothing about the chain or the database.",
        responses=answers(PROBE, s200=json_answer("Serving", None, ok={"status": "ok"})),
    )
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["operations"],
        response_model=schemas.ReadinessPublic,
        summary="Readiness: chain, database and relayer state",
        description="200 when the chain and the database answer, 503 otherwise (same body). Queue depths, "
        "anchor lag and whether this process holds the relayer lease; no data, no signature.",
        responses=answers(
            PROBE,
            s200=json_answer("Ready", None, ready=examples.READY),
            s503=json_answer(
                "Not ready: the chain or the database does not answer",
                "ReadinessPublic",
                chain_down=examples.NOT_READY,
            ),
        ),
    )
    def ready(request: Request) -> JSONResponse:
        state = readiness(request.app.state.gateway)
        _update_gauges(metrics, state)
        return JSONResponse(state, 200 if state["ready"] else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        summary="Prometheus metrics (no data, no signature)",
        description="Request counts and latencies by route template, queue depths, anchor lag, chain head, "
        "in the Prometheus text format.",
        responses=answers(
            PROBE,
            s200={"content": {"text/plain": {"schema": {"type": "string"}, "example": examples.METRICS}}},
        ),
    )
    def prometheus(request: Request) -> Response:
        _update_gauges(metrics, readiness(request.app.state.gateway))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ enrollment

    @app.post(
        "/enrollments",
        tags=["enrollment"],
        response_model=schemas.EnrollmentOfferPublic,
        summary="Staff start a patient's enrollment; answers what the patient signs",
        description="This custodian's staff (its CLINIC admin or signer key) bind a patient pseudonym to the "
        "EHR's `Patient/<id>`. The answer is the EIP-712 Enrollment (a salted commitment to the reference, "
        "never the reference) for the patient to sign and send to POST /enrollments/{patient}/signature. "
        "Asking again for the same pair gives a fresh offer.",
        responses=answers(
            {
                **AUTH,
                **BODY,
                403: "Not this custodian's staff",
                409: "The pseudonym is already bound to another local reference here",
                422: "patient is not an address, or localReference is not Patient/<id>",
            },
            s200=json_answer("The Enrollment to sign", None, offer=examples.ENROLLMENT_OFFER),
        ),
        openapi_extra=json_body(
            example=("Bind a pseudonym to the EHR's Patient/example", examples.ENROLLMENT_CREATE)
        ),
    )
    def start_enrollment(
        body: schemas.EnrollmentCreate, who: Signed, request: Request
    ) -> schemas.EnrollmentOfferPublic:
        offer = enrollment.start_enrollment(
            request.app.state.gateway, who, body.patient, body.local_reference
        )
        return schemas.EnrollmentOfferPublic(status=offer.status, typedData=offer.typed_data)

    @app.post(
        "/enrollments/{patient}/signature",
        tags=["enrollment"],
        response_model=schemas.JobPublic,
        summary="The patient signs the enrollment; relayed on chain",
        description="Signed by the patient's own key (keyid = {patient}): the EIP-712 signature over the "
        "offer's Enrollment, with its nonce and deadline. The gateway checks it and relays it to "
        "RecordRegistry, waiting up to 10 s for it to be mined. " + JOB,
        responses=answers(
            {
                **AUTH,
                **BODY,
                403: "The request is not signed by {patient}",
                404: "No enrollment was started for this pseudonym here",
                422: "The signature is not the patient's over this Enrollment, or its deadline passed",
            },
            success=JOB_ANSWERS,
        ),
        openapi_extra=json_body(
            signed=("The patient's signature of the offer", examples.ENROLLMENT_SIGNATURE)
        ),
    )
    def complete_enrollment(
        patient: str, body: schemas.EnrollmentSignature, who: Signed, request: Request
    ) -> JSONResponse:
        if who.keyid.lower() != patient.lower():
            raise errors.Forbidden("an enrollment is signed by its patient")
        status = enrollment.complete_enrollment(
            request.app.state.gateway, who, body.nonce, body.deadline, _hex(body.signature)
        )
        return _job(status)

    # ------------------------------------------------------------------ records

    @app.post(
        "/fhir",
        tags=["records"],
        response_class=FhirResponse,
        summary="Post a FHIR R4 resource or transaction Bundle for an enrolled patient",
        description="This custodian's staff send one resource, or a transaction Bundle (atomic: all stored "
        "or none), about one enrolled patient. Each resource is sealed and queued for anchoring; the same "
        "(resourceType, id) with identical content is a no-op, with changed content a new version. "
        "201 when anything new was stored, 200 when all was identical. A Bundle is answered with a "
        "transaction-response Bundle, a single resource with an OperationOutcome. Refusals are "
        "OperationOutcomes, one issue per problem with its FHIRPath expression.",
        responses=answers(
            {
                **AUTH,
                400: "Not valid FHIR R4 JSON (syntax, depth, structure, unsupported type or reference)",
                403: "Not this custodian's staff",
                409: "The patient is not enrolled here, or a resource was erased",
                413: None,
                415: None,
                422: "An entry is about another patient than the Bundle's",
            },
            fhir=True,
            s200=fhir_answer(
                "Nothing new: identical to the stored versions",
                {"oneOf": [ref("FhirBundle"), ref("OperationOutcome")]},
                bundle=examples.TRANSACTION_RESPONSE,
            ),
            s201=fhir_answer(
                "Stored; anchoring pending",
                {"oneOf": [ref("FhirBundle"), ref("OperationOutcome")]},
                bundle=examples.TRANSACTION_RESPONSE,
                resource=examples.STORED_ONE,
            ),
        ),
        openapi_extra=fhir_body(
            "A FHIR R4 resource or transaction Bundle (application/fhir+json; application/json is accepted)",
            bundle=(
                "Transaction Bundle: HL7 R4 examples Observation f001 and Claim 100150 for Patient/example",
                examples.FHIR_TRANSACTION_BUNDLE,
            ),
            resource=("One resource: HL7 R4 example Observation f001 (glucose)", examples.FHIR_OBSERVATION),
        ),
    )
    def post_fhir(who: Signed, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in (FHIR_CONTENT_TYPE, "application/json"):
            return JSONResponse(
                outcome(415, f"send {FHIR_CONTENT_TYPE}, not {ctype or 'no content type'}", "not-supported"),
                415,
                media_type=FHIR_CONTENT_TYPE,
            )
        result = ingest.ingest(request.app.state.gateway, who, request.state.body)
        created = any(r.created or not r.unchanged for r in result.results)
        # orjson: the transaction-response of a large Bundle cost json.dumps a few ms
        body = orjson.dumps(result.body())
        return Response(body, 201 if created else 200, media_type=FHIR_CONTENT_TYPE)

    @app.get(
        "/patients/{patient}/records",
        tags=["records"],
        response_model=list[schemas.RecordPublic],
        summary="A patient's record metadata at this custodian",
        description="Every version of every record of the pseudonym here, with its anchoring status: for "
        "the patient itself, this custodian's staff and AUDITOR members. Metadata only, no content.",
        responses=answers(
            {
                **AUTH,
                403: "Neither the patient, this custodian's staff nor an auditor",
                404: "Not a pseudonym, or no such patient here",
            },
            s200=json_answer("The patient's records", None, records=examples.RECORDS),
        ),
    )
    def patient_records(patient: str, who: Signed, request: Request) -> list[schemas.RecordPublic]:
        return [
            schemas.RecordPublic(
                recordId="0x" + r.record_id.hex(),
                resourceType=r.resource_type,
                resourceId=r.resource_id,
                version=r.version,
                category=r.category.name,
                status=r.status,
                commitment="0x" + r.commitment.hex(),
                supersedes="0x" + r.supersedes.hex() if r.supersedes else None,
                anchoredAt=r.anchored_at.isoformat() if r.anchored_at else None,
            )
            for r in list_records(request.app.state.gateway, who, patient)
        ]

    @app.get(
        "/records/{record_id}",
        tags=["records"],
        response_class=FhirResponse,
        summary="Read a record: the body is the committed FHIR JSON; headers carry the proof",
        description="For a member whose consent on chain covers the record's category for `purpose`, a "
        "CLINIC member breaking the glass (purpose ETREAT or BTG with the signed headers "
        "careledger-break-glass-reason and careledger-acting-user; rate-limited, always logged and shown "
        "to the patient), or the patient. The body is exactly the committed bytes; the CareLedger-* "
        "headers let the reader check them against the commitment on chain. Every disclosure to a member "
        "is logged in AccessLog with the request's signature.",
        responses=answers(
            {
                **AUTH,
                403: "No consent covers this category and purpose, not a member, or break-glass refused",
                404: "No such record at this custodian (or not 32 bytes of hex)",
                409: "The record is not anchored yet; retry in a moment",
                410: None,
                422: "purpose is missing or not an HL7 ActReason code this network knows",
                429: None,
            },
            s200={
                "description": "The record's FHIR JSON, as committed",
                "headers": PROOF_HEADERS,
                "content": {
                    FHIR_CONTENT_TYPE: {"schema": ref("FhirResource"), "example": examples.FHIR_OBSERVATION}
                },
            },
        ),
        openapi_extra={"parameters": BREAK_GLASS_PARAMETERS},
    )
    async def read_record(
        record_id: str,
        who: SignedUnspent,
        request: Request,
        purpose: Annotated[
            str, Query(max_length=16, description="HL7 v3 ActReason, e.g. TREAT, HPAYMT, BTG")
        ],
    ) -> Response:
        # On the event loop: the lookups are cached or local, and the nonce and the disclosure
        # are committed together, awaited, so a read holds no thread (break-glass, which takes a
        # lock, runs in one).
        try:
            purpose_code = Purpose[purpose]
        except KeyError:
            raise errors.InvalidRequest(f"unknown purpose {purpose}") from None
        disclosed = await access.read_record_async(
            request.app.state.gateway, who, _record_id(record_id), purpose_code
        )
        headers = _proof_headers(disclosed)
        return Response(disclosed.content, 200, headers=headers, media_type=FHIR_CONTENT_TYPE)

    @app.post(
        "/records/{record_id}/erasure",
        tags=["records"],
        response_model=schemas.ErasurePublic,
        summary="The patient's signed erasure: every version crypto-shredded, marked on chain",
        description="Signed by the record's patient, with the patient's EIP-712 Erasure signature of the "
        "latest version's record id. Every version's ciphertext, data key and salt are destroyed, the "
        "key-encryption key rotated, and the erasure marked on chain with the patient's signature. The "
        "answer lists the members any version was disclosed to (GDPR art. 19).",
        responses=answers(
            {
                **AUTH,
                **BODY,
                403: "Not the record's patient",
                404: "No such record at this custodian",
                409: "Not the latest version, or a legal retention hold (the detail gives its basis)",
                410: "Already erased",
                422: "The Erasure signature is not the patient's, or its deadline passed",
            },
            s200=json_answer("Erased", None, erased=examples.ERASURE),
        ),
        openapi_extra=json_body(signed=("The patient's signed Erasure", examples.ERASURE_REQUEST)),
    )
    def erase_record(
        record_id: str, body: schemas.ErasureRequest, who: Signed, request: Request
    ) -> JSONResponse:
        result = erasure.erase(
            request.app.state.gateway,
            who,
            _record_id(record_id),
            body.nonce,
            body.deadline,
            _hex(body.signature),
        )
        public = schemas.ErasurePublic(
            erased=["0x" + r.hex() for r in result.erased],
            disclosedTo=result.disclosed_to,
            chain=_job_public(result.chain) if result.chain else None,
            keysRotated=result.keys_rotated,
        )
        return JSONResponse(public.model_dump(by_alias=True), 200)

    @app.get(
        "/patients/{patient}/disclosures",
        tags=["records"],
        response_model=list[schemas.DisclosurePublic],
        summary="Accounting of disclosures of a pseudonym's records, at every custodian, from the chain",
        description="Every AccessLog entry about the pseudonym's records, at any custodian, read from chain "
        "events (HIPAA 164.528): when, which record, who asked (recovered from the logged signature), for "
        "what purpose, under which consent or break-glass. For the patient itself and AUDITOR members.",
        responses=answers(
            {**AUTH, 403: "Neither the patient nor an AUDITOR member", 404: "Not a pseudonym"},
            s200=json_answer("The disclosures, oldest first", None, disclosures=examples.DISCLOSURES),
        ),
    )
    def disclosures(patient: str, who: Signed, request: Request) -> list[schemas.DisclosurePublic]:
        return [
            schemas.DisclosurePublic(
                when=d.when,
                recordId="0x" + d.record_id.hex(),
                custodian=d.custodian,
                category=d.category.name,
                requester=d.requester,
                member=d.member,
                purpose=d.purpose.name,
                breakGlass=d.break_glass,
                consentId="0x" + d.consent_id.hex() if d.consent_id else None,
                txHash=d.tx_hash,
            )
            for d in accounting.disclosures_of(request.app.state.gateway, who, patient)
        ]

    # ------------------------------------------------------------------ consent

    @app.post(
        "/consents/grants",
        tags=["consent"],
        response_model=schemas.JobPublic,
        summary="Relay a grant the patient signed (EIP-712)",
        description="Signed by the patient (keyid = message.patient): a ConsentRegistry Grant and the "
        "patient's EIP-712 signature of it. Checked, then relayed on chain; the consent id is in the "
        "job's result. " + JOB,
        responses=answers(
            {
                **AUTH,
                **BODY,
                403: "The request is not signed by the grant's patient",
                422: "Empty or unknown categories or purposes (BTG is never granted), an empty or past "
                "window, a passed deadline, a grantee that is not a member, or a bad signature",
            },
            success=JOB_ANSWERS,
        ),
        openapi_extra=json_body(
            insurer=("Claims, for payment, to an insurer, for a year", examples.GRANT_SUBMIT)
        ),
    )
    async def grant(body: schemas.GrantSubmit, who: Signed, request: Request) -> JSONResponse:
        # On the event loop: the checks are CPU and cached lookups, the job's commit and its
        # mining are awaited, so patients waiting for the chain hold no thread.
        status = await consent.submit_grant_async(
            request.app.state.gateway, who, body.message.model_dump(), _hex(body.signature)
        )
        return _job(status)

    @app.post(
        "/consents/revocations",
        tags=["consent"],
        response_model=schemas.JobPublic,
        summary="Relay a revocation the patient signed, at once",
        description="Signed by the patient: a Revocation naming one of the patient's consents, and its "
        "EIP-712 signature. Relayed before any other pending work; it takes effect in the block that "
        "includes it. Any active member's gateway relays it. " + JOB,
        responses=answers(
            {
                **AUTH,
                **BODY,
                403: "The request is not signed by the revocation's patient",
                404: "No such consent of this patient",
                409: "The consent is already revoked",
                422: "A passed deadline or a bad signature",
            },
            success=JOB_ANSWERS,
        ),
        openapi_extra=json_body(revoke=("Revoke the insurer's consent", examples.REVOCATION_SUBMIT)),
    )
    def revoke(body: schemas.RevocationSubmit, who: Signed, request: Request) -> JSONResponse:
        status = consent.submit_revocation(
            request.app.state.gateway, who, body.message.model_dump(), _hex(body.signature)
        )
        return _job(status)

    @app.get(
        "/patients/{patient}/consents",
        tags=["consent"],
        response_model=list[schemas.ConsentPublic],
        summary="A patient's consents, from the chain",
        description="Every consent the pseudonym granted, to any member, with its state (active, expired, "
        "revoked, not yet valid) and transactions. For the patient itself and any active member.",
        responses=answers(
            {
                **AUTH,
                403: "Neither the patient nor an active member",
                404: "Not a pseudonym (an Ethereum address)",
            },
            s200=json_answer("The consents", None, consents=examples.CONSENTS),
        ),
    )
    def consents(patient: str, who: Signed, request: Request) -> list[schemas.ConsentPublic]:
        gw: Gateway = request.app.state.gateway
        if who.keyid.lower() != patient.lower():
            who.require_member()
        return [
            schemas.ConsentPublic(
                consentId="0x" + c.consent_id.hex(),
                grantee=c.grantee,
                index=c.index,
                categories=[x.name for x in categories_of(c.categories)],
                purposes=[x.name for x in purposes_of(c.purposes)],
                validFrom=c.valid_from,
                validUntil=c.valid_until,
                status=c.status(gw.clock()),
                grantedTx=c.granted_tx,
                revokedTx=c.revoked_tx,
            )
            for c in consent.consents_of(gw, patient)
        ]

    @app.post(
        "/fhir/Consent",
        tags=["consent"],
        response_model=schemas.ConsentImportPublic,
        summary="Turn a FHIR R4 Consent into the EIP-712 grants it stands for, for its patient to sign",
        description="Signed by a patient enrolled here: a FHIR R4 Consent about that patient (permit "
        "provisions naming recipient members by `urn:careledger:member` identifier, purposes as "
        "ActReason codes, classes as resource types, a period) becomes one EIP-712 Grant per recipient. "
        "Nothing is stored or relayed: the patient signs the grants and sends them to "
        "POST /consents/grants. Refusals are OperationOutcomes.",
        responses=answers(
            {
                **AUTH,
                400: "Not a Consent CareLedger can express (deny, unnamed recipients, unknown codes)",
                409: "The signer is not enrolled here",
                413: None,
                422: "The Consent is about another patient than the signer",
            },
            fhir=True,
            s200=json_answer("The grants to sign", None, grants=examples.CONSENT_IMPORT),
        ),
        openapi_extra=fhir_body(
            "A FHIR R4 Consent",
            permit=(
                "A clinic may read labs, conditions and reports for TREAT and ETREAT in 2026 "
                "(tests/fixtures/fhir/consent-permit.json, first provision)",
                examples.FHIR_CONSENT,
            ),
        ),
    )
    def import_consent(who: Signed, request: Request) -> JSONResponse:
        typed = consent.import_fhir_consent(request.app.state.gateway, who, request.state.body)
        return JSONResponse({"grants": typed}, 200)

    @app.get(
        "/fhir/Consent",
        tags=["consent"],
        response_class=FhirResponse,
        summary="A patient's consents on chain as FHIR R4 Consents (searchset Bundle)",
        description="The consents of GET /patients/{patient}/consents as FHIR R4 Consent resources in a "
        "searchset Bundle. For the patient itself and any active member. Refusals are OperationOutcomes.",
        responses=answers(
            {
                **AUTH,
                403: "Neither the patient nor an active member",
                404: "Not a pseudonym (an Ethereum address)",
                422: "The patient parameter is missing",
            },
            fhir=True,
            s200=fhir_answer("The consents", ref("FhirBundle"), searchset=examples.CONSENT_SEARCHSET),
        ),
    )
    def export_consents(
        who: Signed, request: Request, patient: Annotated[str, Query(description="The patient's pseudonym")]
    ) -> JSONResponse:
        bundle = consent.export_fhir_consents(request.app.state.gateway, who, patient)
        return JSONResponse(bundle, 200, media_type=FHIR_CONTENT_TYPE)

    @app.get(
        "/jobs/{job_id}",
        tags=["consent"],
        response_model=schemas.JobPublic,
        summary="The state of a relayed message",
        description="For the job's patient and this custodian's staff; anyone else is told it does not "
        "exist. 200 when done, 202 while pending or sent, 422 when the contract refused it.",
        responses=answers(
            {
                **AUTH,
                404: "No such job, or not the signer's",
                422: "job_id is not an integer",
            },
            success=JOB_ANSWERS,
        ),
    )
    def job(job_id: int, who: Signed, request: Request) -> JSONResponse:
        return _job(job_status(request.app.state.gateway, job_id, asked_by=who))

    # ------------------------------------------------------------------ audit

    @app.get(
        "/audit/records",
        tags=["audit"],
        response_model=schemas.AuditRecordsPage,
        response_model_exclude_none=True,
        summary="An auditor's page of this store: ciphertexts, salts and plaintext digests, never plaintext",
        description="For AUDITOR members: every record row, by cursor, with what an auditor needs to "
        "recompute each commitment (careledger audit verify-store), never the plaintext. Erased rows keep "
        "their metadata and lose ciphertext, salt and digest.",
        responses=answers(
            {
                **AUTH,
                403: "Not an active AUDITOR member",
                422: "limit out of 1..500, or after is not a cursor this gateway handed out",
            },
            s200=json_answer("A page", None, page=examples.AUDIT_PAGE),
        ),
    )
    def audit_records(
        who: Signed,
        request: Request,
        after: Annotated[
            str | None, Query(max_length=64, description="The cursor of the previous page's `next`")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500, description="Rows per page")] = 100,
    ) -> schemas.AuditRecordsPage:
        page = export_records(request.app.state.gateway, who, after, limit)
        return schemas.AuditRecordsPage(
            custodian=page.custodian,
            records=[_audit_record(r) for r in page.records],
            next=page.next_cursor,
            total=page.total,
        )

    app.openapi = lambda: document(app, principal, identified)  # type: ignore[method-assign]
    return app


def _audit_record(r: ExportedRecord) -> schemas.AuditRecordPublic:
    def hex_or_none(value: bytes | None) -> str | None:
        return None if value is None else "0x" + value.hex()

    return schemas.AuditRecordPublic(
        recordId="0x" + r.record_id.hex(),
        patient=r.patient,
        resourceType=r.resource_type,
        resourceId=r.resource_id,
        version=r.version,
        category=r.category.name,
        status=r.status,
        commitment="0x" + r.commitment.hex(),
        supersedes=hex_or_none(r.supersedes),
        ciphertext=base64.b64encode(r.ciphertext).decode() if r.ciphertext is not None else None,
        salt=hex_or_none(r.salt),
        plaintextSha256=hex_or_none(r.plaintext_sha256),
        createdAt=r.created_at.isoformat(),
        anchoredAt=r.anchored_at.isoformat() if r.anchored_at else None,
        erasedAt=r.erased_at.isoformat() if r.erased_at else None,
        batchId=r.batch_id,
    )


def _proof_headers(d: access.Disclosed) -> dict[str, str]:
    """What the reader needs to check the body against the commitment anchored on chain."""
    headers = {
        "CareLedger-Record-Id": "0x" + d.record_id.hex(),
        "CareLedger-Commitment": "0x" + d.commitment.hex(),
        "CareLedger-Salt": "0x" + d.salt.hex(),
        "CareLedger-Ciphertext-Sha256": "0x" + d.ciphertext_sha256.hex(),
        "CareLedger-Resource": f"{d.resource_type}/{d.resource_id}/_history/{d.version}",
        "CareLedger-Category": d.category.name,
        "CareLedger-Break-Glass": "true" if d.break_glass else "false",
    }
    if d.consent_id is not None:
        headers["CareLedger-Consent-Id"] = "0x" + d.consent_id.hex()
    if d.checked_block is not None:
        headers["CareLedger-Checked-Block"] = str(d.checked_block)
    return headers


PROOF_HEADERS: dict[str, Any] = {
    name: {"description": text, "required": required, "schema": {"type": "string"}}
    for name, text, required in [
        ("CareLedger-Record-Id", "The on-chain record id", True),
        ("CareLedger-Commitment", "keccak256(salt ‖ sha256(body) ‖ ciphertext digest), as anchored", True),
        ("CareLedger-Salt", "The commitment's salt", True),
        ("CareLedger-Ciphertext-Sha256", "sha256 of the stored ciphertext", True),
        ("CareLedger-Resource", "type/id/_history/version", True),
        ("CareLedger-Category", "The record's data category", True),
        ("CareLedger-Break-Glass", "true when disclosed by break-glass", True),
        ("CareLedger-Consent-Id", "The permitting consent (absent for the patient and break-glass)", False),
        ("CareLedger-Checked-Block", "The block the consent was checked at", False),
    ]
}
BREAK_GLASS_PARAMETERS = [
    {
        "name": name,
        "in": "header",
        "required": False,
        "description": text + " Must be covered by the signature (docs/signing.md §3).",
        "schema": {"type": "string"},
        "example": example,
    }
    for name, text, example in [
        (
            "careledger-break-glass-reason",
            "Break-glass (purpose ETREAT or BTG): why; its hash goes on chain, the text stays here.",
            "unresponsive patient in ED, no consent on file",
        ),
        ("careledger-acting-user", "Break-glass: the clinician acting.", "dr.a.jones"),
    ]
]


def _update_gauges(metrics: Metrics, state: dict[str, Any]) -> None:
    for queue, depth in state.get("queues", {}).items():
        metrics.queue.labels(queue).set(depth)
    if state.get("anchorLagSeconds") is not None:
        metrics.anchor_lag.set(state["anchorLagSeconds"])
    if state.get("chainHead") is not None:
        metrics.chain_head.set(state["chainHead"])


def _job_public(status: JobStatus) -> schemas.JobPublic:
    return schemas.JobPublic(
        job=status.job_id, kind=status.kind, status=status.status, result=status.result, error=status.error
    )


def _job(status: JobStatus) -> JSONResponse:
    body = _job_public(status)
    code = {"done": 200, "failed": 422}.get(status.status, 202)
    return JSONResponse(body.model_dump(), code)


def _hex(value: str) -> bytes:
    try:
        return bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise errors.InvalidRequest("signature: not whole bytes of hex") from None


def _record_id(value: str) -> bytes:
    text = value.removeprefix("0x")
    if len(text) != 64:
        raise errors.NotFound("a record id is 32 bytes of hex")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise errors.NotFound("a record id is 32 bytes of hex") from None
