"""Fuzzing a real gateway over HTTP from its own /openapi.json (schemathesis), every route, three ways.

- signed: each generated request is signed at send time (careledger.auth.signatures.sign_request,
  over exactly the bytes and path that go on the wire) by a real member, or by an enrolled
  patient on the patient's routes, so it gets past authentication and into the routes;
- unsigned: the signature headers removed;
- mis-signed: signed by another key than its keyid, or with a Content-Digest that is not the body's.

Every answer must be documented (status, content type, body schema, headers) and none may be a
5xx; unsigned and mis-signed requests to signed routes are refused with 401 (or, before the
signature is looked at, 400 for an unreadable JSON body and 413 for an oversized one).

The example count per operation comes from CARELEDGER_FUZZ_EXAMPLES (default small, for the
test command); scripts/fuzz runs the same tests with a large count. Generation is derandomized,
so a run is reproducible.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.core.transport import Response

from careledger.api.app import create_app
from careledger.auth.signatures import sign_request
from careledger.chain.devnet import dev_key
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose
from careledger.config import Settings
from tests.backend.gateways import (
    GatewayProcess,
    bundle,
    consent_grant,
    enroll,
    running_gateway,
    wait_anchored,
)
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("CARELEDGER_FUZZ_EXAMPLES", "4"))
SIGNATURE_HEADERS = ("signature", "signature-input", "content-digest")
UNSIGNED_PATHS = {"/health", "/ready", "/metrics"}
# Operations a patient signs for itself; the others are signed by the member who would call them.
PATIENT_SIGNS = {
    "/enrollments/{patient}/signature",
    "/records/{record_id}/erasure",
    "/consents/grants",
    "/consents/revocations",
    "/patients/{patient}/consents",
    "/patients/{patient}/disclosures",
    "/patients/{patient}/records",
    "/fhir/Consent",
    "/jobs/{job_id}",
}
MEMBER_SIGNS = {"/audit/records": 14, "/records/{record_id}": 12}  # the auditor; the insurer (a consent)
CLINIC_STAFF = 10
# What the server sees of a header: printable ASCII, trimmed (docs/signing.md §3). Requests whose
# careledger-* values are anything else may fail the signature check, as documented.
PRINTABLE = {chr(c) for c in range(0x20, 0x7F)}
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]


@dataclass
class Seeded:
    """What the fuzzer may pick real values from: an enrolled patient with anchored records."""

    gateway: GatewayProcess
    patient: LocalAccount
    record_ids: list[str]
    job_ids: list[int]
    sent: dict[str, int] = field(default_factory=dict)


@pytest.fixture(scope="module")
def seeded(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """Clinic A's gateway on its own SQLite file: a patient enrolled as Patient/example, the fixture
    Bundle anchored, and a consent for the insurer to read claims for payment."""
    from careledger.store.migrate import upgrade
    from tests.backend.databases import sqlite_url

    directory = tmp_path_factory.mktemp("fuzz")
    database = sqlite_url(directory)
    upgrade(database)
    with running_gateway(cluster.devnet, cluster.clinic, dev_key(15), database, directory / "a") as gw:
        patient = Account.create()
        enroll(cluster, gw.url, patient)
        CareLedgerClient(dev_key(CLINIC_STAFF), cluster.ledger).post_fhir(gw.url, bundle())
        records = wait_anchored(cluster, gw.url, patient, count=15, timeout=60)
        grant = consent_grant(patient, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT)
        granted = CareLedgerClient(patient.key, cluster.ledger).grant(gw.url, grant)
        assert granted["status"] == "done", granted
        yield Seeded(gw, patient, [str(r["recordId"]) for r in records], [int(granted["job"])])


@pytest.fixture(scope="module")
def gateway_schema(seeded: Seeded) -> schemathesis.BaseSchema:
    """The gateway's own /openapi.json, fetched over HTTP, with hooks mixing real values into
    the generated ones (the seeded patient, its records and jobs, real purposes)."""
    schema = schemathesis.openapi.from_url(f"{seeded.gateway.url}/openapi.json")
    patient = seeded.patient.address
    purposes = [p.name for p in Purpose]

    @schema.hook
    def flatmap_path_parameters(ctx: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[Any]:
        real: dict[str, st.SearchStrategy[Any]] = {
            "patient": st.sampled_from([patient, patient.lower()]),
            "record_id": st.sampled_from(seeded.record_ids),
            "job_id": st.sampled_from(seeded.job_ids),
        }
        choices = {
            name: st.one_of(st.just(value), real[name]) if name in real else st.just(value)
            for name, value in (path_parameters or {}).items()
        }
        return st.fixed_dictionaries(choices)

    @schema.hook
    def flatmap_query(ctx: Any, query: dict[str, Any]) -> st.SearchStrategy[Any]:
        real = {"purpose": st.sampled_from(purposes), "patient": st.just(patient)}
        choices = {
            name: st.one_of(st.just(value), real[name]) if name in real else st.just(value)
            for name, value in (query or {}).items()
        }
        return st.fixed_dictionaries(choices)

    return schema


# The operations, as this code documents them; the fuzzer fetches the document from the running
# gateway and a test checks the two agree. (Parametrised here, not by schemathesis' lazy pytest
# loader, which does not run under pytest 9.)
OPERATIONS = sorted(
    (method.upper(), path)
    for path, ops in create_app(Settings()).openapi()["paths"].items()
    for method in ops
)
VARIANTS = ["signed", "unsigned", "mis-signed"]
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _cases(schema: schemathesis.BaseSchema, method: str, path: str) -> st.SearchStrategy[Case]:
    """Cases of one operation: its documented examples, valid data and (where the schema can be
    violated) invalid data."""
    operation = schema[path][method]
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    strategies += operation.get_strategies_from_examples()
    if path not in UNSIGNED_PATHS:  # the probes take no input to violate
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(strategies)


# ---------------------------------------------------------------------- signing at send time


class _Signing(requests.auth.AuthBase):
    """Signs the prepared request (the exact body and path-and-query sent) with `key`, then lets
    `tamper` spoil it; with no key, only removes the signature headers schemathesis generated."""

    def __init__(self, origin: str, key: bytes | None) -> None:
        self.origin = origin
        self.key = key
        self.tamper: Callable[[_Signing, requests.PreparedRequest, bytes], None] | None = None

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        for name in SIGNATURE_HEADERS:
            r.headers.pop(name, None)
        if self.key is None:
            return r
        body = self.body_of(r)
        r.headers.update(self.sign(self.key, r, body))
        if self.tamper is not None:
            self.tamper(self, r, body)
        return r

    @staticmethod
    def body_of(r: requests.PreparedRequest) -> bytes:
        body = r.body.encode() if isinstance(r.body, str) else (r.body or b"")
        assert isinstance(body, bytes), type(body)
        return body

    def sign(self, key: bytes | str, r: requests.PreparedRequest, body: bytes) -> dict[str, str]:
        covered = {k.lower(): str(v) for k, v in r.headers.items() if k.lower().startswith("careledger-")}
        return sign_request(key, str(r.method), self.origin + r.path_url, body, covered)


def _other_key(signing: _Signing, r: requests.PreparedRequest, body: bytes) -> None:
    """Signed by an impostor's key, claiming the real signer's keyid."""
    impostor = Account.create()
    real = r.headers["signature-input"].split('keyid="', 1)[1].split('"', 1)[0]
    forged = signing.sign(impostor.key, r, body)
    r.headers["signature-input"] = forged["signature-input"].replace(impostor.address, real)
    r.headers["signature"] = forged["signature"]


def _wrong_digest(signing: _Signing, r: requests.PreparedRequest, body: bytes) -> None:
    """A valid signature by the right key over a Content-Digest that is not the body's."""
    assert signing.key is not None
    r.headers.update(signing.sign(signing.key, r, body + b" "))


def _signer(seeded: Seeded, case: Case) -> bytes | None:
    """The patient on the patient's routes, else the member who would call the route."""
    path = case.operation.path
    if path in UNSIGNED_PATHS:
        return None
    if path in PATIENT_SIGNS:
        return bytes(seeded.patient.key)
    return dev_key(MEMBER_SIGNS.get(path, CLINIC_STAFF))


def _operations(schema: schemathesis.BaseSchema) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _careledger_headers_clean(case: Case) -> bool:
    for name, value in (case.headers or {}).items():
        if name.lower().startswith("careledger-"):
            text = str(value)
            if text != text.strip() or not set(text) <= PRINTABLE:
                return False
    return True


def _count(seeded: Seeded, variant: str, status: int) -> None:
    key = f"{variant} {status}"
    seeded.sent[key] = seeded.sent.get(key, 0) + 1


def _detail(response: Response) -> str:
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return response.text[:200]
    if body.get("resourceType") == "OperationOutcome":
        return " | ".join(str(i.get("diagnostics", "")) for i in body.get("issue", []))
    return str(body.get("detail", ""))


def _refused_before_the_route(case: Case, response: Response, reasons: tuple[str, ...]) -> None:
    """A request that is not validly signed never reaches a signed route."""
    if case.operation.path in UNSIGNED_PATHS:
        assert response.status_code in (200, 503), response.text[:300]
        return
    status = response.status_code
    if status == 413:
        return  # the size limit comes first (docs/signing.md §10)
    assert status == 401, f"{case.method} {case.formatted_path}: {status} {response.text[:300]}"
    detail = _detail(response)
    assert any(reason in detail for reason in reasons), detail


# ---------------------------------------------------------------------- the three variants


def test_served_document_has_every_operation(gateway_schema: schemathesis.BaseSchema) -> None:
    served = sorted((op.method.upper(), op.path) for op in _operations(gateway_schema))
    assert served == OPERATIONS


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz(
    variant: str, method: str, path: str, gateway_schema: schemathesis.BaseSchema, seeded: Seeded
) -> None:
    checks = [_check(name) for name in CHECKS]
    flips = iter(range(10**9))

    @SETTINGS
    @hypothesis.given(case=_cases(gateway_schema, method, path))
    def fuzz(case: Case) -> None:
        session = requests.Session()
        key = None if variant == "unsigned" else _signer(seeded, case)
        signing = _Signing(seeded.gateway.url, key)
        if variant == "mis-signed":
            signing.tamper = _other_key if next(flips) % 2 == 0 else _wrong_digest
        session.auth = signing
        with session:
            response = case.call(session=session, timeout=60)
        _count(seeded, variant, response.status_code)
        case.validate_response(response, checks=checks)
        if variant == "signed":
            if path not in UNSIGNED_PATHS and _careledger_headers_clean(case):
                assert response.status_code != 401, f"{case.method} {case.formatted_path}: {response.text}"
        elif variant == "unsigned":
            _refused_before_the_route(case, response, ("request is not signed",))
        else:
            reason = (
                "does not verify for keyid"
                if signing.tamper is _other_key
                else "Content-Digest does not match the body"
            )
            _refused_before_the_route(case, response, (reason, "every careledger-* header must be signed"))

    fuzz()


def _check(name: str) -> Any:
    from schemathesis import checks

    return getattr(checks, name)


def test_fuzz_reached_the_routes(seeded: Seeded) -> None:
    """The signed run got answers beyond 401: it exercised the routes, not just the signature check.
    (Runs after the fuzz tests, in file order.)"""
    if not seeded.sent:
        pytest.skip("counts what the fuzz tests of this module sent; none ran")
    statuses = {int(k.split()[-1]) for k in seeded.sent if k.startswith("signed ")}
    assert statuses & {200, 201, 202}, seeded.sent
    assert statuses & {403, 404, 409, 422}, seeded.sent
    print("fuzz answers by variant and status:", json.dumps(dict(sorted(seeded.sent.items()))))


# ---------------------------------------------------------------------- what the fuzzer found
# 65 bytes r ‖ s ‖ v with r = 0: v and s are in range, yet no public key recovers from it.
RECOVERS_NO_KEY = bytes(32) + (1).to_bytes(32, "big") + bytes([27])


def test_patient_signature_recovering_no_key_refused_with_422(seeded: Seeded) -> None:
    """Found by the fuzzer on POST /records/{id}/erasure; the same check guards enrollment
    signatures, grants and revocations."""
    url = f"{seeded.gateway.url}/records/{seeded.record_ids[0]}/erasure"
    body = json.dumps({"nonce": 1, "deadline": 2**40, "signature": "0x" + RECOVERS_NO_KEY.hex()}).encode()
    headers = sign_request(seeded.patient.key, "POST", url, body)
    response = requests.post(
        url, data=body, headers={**headers, "content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 422, response.text
    assert "not the patient's" in response.json()["detail"]


def test_request_signature_recovering_no_key_refused_with_401(seeded: Seeded) -> None:
    url = f"{seeded.gateway.url}/patients/{seeded.patient.address}/consents"
    headers = sign_request(seeded.patient.key, "GET", url)
    headers["signature"] = f"sig1=:{base64.b64encode(RECOVERS_NO_KEY).decode()}:"
    response = requests.get(url, headers=headers, timeout=60)
    assert response.status_code == 401, response.text
    assert "does not verify for keyid" in response.json()["detail"]
