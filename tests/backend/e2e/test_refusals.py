"""Refusals over real HTTP: every hostile or broken request gets its exact status and a clear reason.

Problem documents (application/problem+json) everywhere but /fhir, which answers with a FHIR
OperationOutcome (application/fhir+json); never a 500, never a traceback. Legitimate steps go
through CareLedgerClient, hostile ones are raw signed requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from careledger.auth.signatures import MAX_VALIDITY_S, sign_request
from careledger.chain.devnet import dev_key
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose, Role
from tests.backend.gateways import (
    GatewayProcess,
    bundle,
    consent_grant,
    enroll,
    observation,
    past_head_max_age,
    running_gateway,
    wait_anchored,
    wait_until,
)
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"
FHIR = "application/fhir+json"
# What must never reach a client: a traceback, the store's or the driver's internals.
LEAKS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "sqlite3", "root:x:0:0", "internal error")
NO_RECORD = "0x" + "00" * 32


# ---------------------------------------------------------------------- helpers


def _send(
    key: bytes | str,
    method: str,
    url: str,
    body: bytes = b"",
    *,
    signed: dict[str, str] | None = None,
    content_type: str | None = None,
    created: int | None = None,
    expires_in: int = MAX_VALIDITY_S,
) -> httpx.Response:
    """A request signed for exactly the URL httpx puts on the wire."""
    target = str(httpx.URL(url))
    headers = sign_request(key, method, target, body, signed, created=created, expires_in=expires_in)
    if content_type:
        headers["content-type"] = content_type
    return httpx.request(method, target, content=body, headers=headers, timeout=30)


def _no_leak(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    for marker in LEAKS:
        assert marker not in response.text, response.text


def _problem(response: httpx.Response, status: int, *reasons: str) -> str:
    """Assert a problem document with this status whose detail names every reason."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == status and body["type"].startswith("urn:careledger:problem:"), body
    detail = body["detail"]
    assert isinstance(detail, str) and detail, body
    for reason in reasons:
        assert reason in detail, detail
    _no_leak(response)
    return detail


def _outcome(response: httpx.Response, status: int, *reasons: str, code: str | None = None) -> dict[str, Any]:
    """Assert an OperationOutcome with this status whose diagnostics name every reason."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR), response.headers
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"], body
    assert all(i["severity"] in ("error", "fatal") for i in body["issue"]), body
    if code is not None:
        assert body["issue"][0]["code"] == code, body
    diagnostics = " | ".join(i["diagnostics"] for i in body["issue"])
    for reason in reasons:
        assert reason in diagnostics, diagnostics
    _no_leak(response)
    return body


def _patient_with_records(cluster: Cluster, url: str) -> tuple[LocalAccount, dict[str, bytes]]:
    """A patient enrolled at clinic A with the fixture bundle anchored; record ids by resource type."""
    patient = Account.create()
    enroll(cluster, url, patient)
    CareLedgerClient(dev_key(10), cluster.ledger).post_fhir(url, bundle())
    listing = wait_anchored(cluster, url, patient, count=15)
    return patient, {str(r["resourceType"]): bytes.fromhex(str(r["recordId"])[2:]) for r in listing}


def _grant(
    cluster: Cluster,
    url: str,
    patient: LocalAccount,
    grantee: str,
    category: Category,
    purpose: Purpose,
    nonce: int,
) -> None:
    grant = consent_grant(patient, grantee, category, purpose, nonce)
    granted = CareLedgerClient(patient.key, cluster.ledger).grant(url, grant)
    assert granted["status"] == "done", granted


def _record_url(url: str, record_id: bytes, purpose: str) -> str:
    return f"{url}/records/0x{record_id.hex()}?purpose={purpose}"


@contextmanager
def _another_database(database_url: str, directory: Path) -> Iterator[str]:
    """A second empty, migrated database of the same kind: one store per custodian."""
    from careledger.store.migrate import upgrade
    from tests.backend.databases import postgres_database, sqlite_url

    if database_url.startswith("sqlite"):
        directory.mkdir(parents=True, exist_ok=True)
        url = sqlite_url(directory)
        upgrade(url)
        yield url
    else:
        with postgres_database() as url:
            upgrade(url)
            yield url


def _funded_relayer(cluster: Cluster) -> bytes:
    """A fresh relayer key registered for clinic B, with test ether for its transactions."""
    relayer = Account.create()
    cluster.ledger.members.set_relayer(cluster.clinic_b, relayer.address)
    cluster.ledger.w3.provider.make_request("anvil_setBalance", [relayer.address, hex(10**20)])  # type: ignore[arg-type]
    return bytes(relayer.key)


def _logged_break_glass(cluster: Cluster, record_id: bytes, purpose: Purpose, reason: str) -> bool:
    """Clinic B's break-glass read is on chain: flagged, for this purpose, on the reason's hash."""
    return any(
        e.requester == cluster.clinic_b.address
        and e.break_glass
        and e.purpose == purpose
        and e.basis == keccak(text=reason)
        for e in cluster.ledger.access.entries_for([record_id])
    )


# ---------------------------------------------------------------------- 401: authentication


def test_request_refused_when_signature_is_missing_stale_or_tampered(
    cluster: Cluster, gateway_a: GatewayProcess
) -> None:
    url, staff = gateway_a.url, dev_key(10)
    consents = f"{url}/patients/{Account.create().address}/consents"

    _problem(httpx.get(consents), 401, "not signed")
    _outcome(httpx.post(f"{url}/fhir", content=b"{}", headers={"content-type": FHIR}), 401, "not signed")
    _outcome(
        _send(Account.create().key, "POST", f"{url}/fhir", b"{}", content_type=FHIR, created=1),
        401,
        "expired",
    )

    garbage = {"signature": "sig1=:!!:", "signature-input": "sig1=()", "content-digest": "sha-256=:x:"}
    _problem(httpx.get(consents, headers=garbage), 401, "does not follow the profile")

    # Replay: the identical signed request twice.
    headers = sign_request(staff, "GET", consents)
    assert httpx.get(consents, headers=headers).status_code == 200
    _problem(httpx.get(consents, headers=headers), 401, "nonce")
    # A read spends its nonce with its disclosure; refused before that (by the route's own
    # checks, or FastAPI's), it has spent it all the same.
    for refused, status in ((f"{url}/records/{NO_RECORD}?purpose=TREAT", 404),
                            (f"{url}/records/{NO_RECORD}?purpose=PAYMT", 422),
                            (f"{url}/records/{NO_RECORD}", 422)):  # fmt: skip
        headers = sign_request(staff, "GET", refused)
        assert httpx.get(refused, headers=headers).status_code == status
        _problem(httpx.get(refused, headers=headers), 401, "nonce")

    # Tampered body: the digest no longer matches; with a matching digest, the signature fails.
    body = json.dumps(bundle()).encode()
    headers = sign_request(staff, "POST", f"{url}/fhir", body)
    forged = body.replace(b'"Patient/example"', b'"Patient/other00"')
    sent = httpx.post(f"{url}/fhir", content=forged, headers={**headers, "content-type": FHIR})
    _outcome(sent, 401, "Content-Digest does not match the body", code="security")
    assert forged != body
    redigested = {
        **headers,
        "content-digest": sign_request(staff, "POST", f"{url}/fhir", forged)["content-digest"],
    }
    sent = httpx.post(f"{url}/fhir", content=forged, headers={**redigested, "content-type": FHIR})
    _outcome(sent, 401, "does not verify", code="security")

    # Tampered purpose: signed for TREAT, sent for HPAYMT.
    headers = sign_request(staff, "GET", f"{url}/records/{NO_RECORD}?purpose=TREAT")
    _problem(httpx.get(f"{url}/records/{NO_RECORD}?purpose=HPAYMT", headers=headers), 401, "does not verify")

    # Clock: stale, from the future, valid for too long.
    now = int(time.time())
    _problem(_send(staff, "GET", consents, created=now - 600), 401, "expired")
    _problem(_send(staff, "GET", consents, created=now + 600), 401, "future")
    _problem(_send(staff, "GET", consents, expires_in=MAX_VALIDITY_S + 1), 401, "at most 300 s")

    # keyid names someone other than the signer.
    headers = sign_request(staff, "GET", consents)
    impostor = to_checksum_address(cluster.insurer_signer.address)
    signer = to_checksum_address(Account.from_key(staff).address)
    headers["signature-input"] = headers["signature-input"].replace(signer, impostor)
    _problem(httpx.get(consents, headers=headers), 401, "does not verify for keyid")

    # A careledger-* header added after signing is not covered by the signature.
    headers = sign_request(staff, "GET", f"{url}/records/{NO_RECORD}?purpose=BTG")
    smuggled = {**headers, "careledger-break-glass-reason": "emergency"}
    _problem(httpx.get(f"{url}/records/{NO_RECORD}?purpose=BTG", headers=smuggled), 401, "must be signed")


def test_request_refused_when_signed_for_another_gateway(
    cluster: Cluster, gateway_a: GatewayProcess, database_url: str, tmp_path: Path
) -> None:
    with (
        _another_database(database_url, tmp_path / "b-db") as url_b,
        running_gateway(
            cluster.devnet, cluster.clinic_b, _funded_relayer(cluster), url_b, tmp_path / "b"
        ) as b,
    ):
        path = f"/patients/{Account.create().address}/consents"
        headers = sign_request(cluster.insurer_signer.key, "GET", b.url + path)
        assert httpx.get(b.url + path, headers=headers).status_code == 200
        authority_b = b.url.split("://", 1)[1]

        # Replayed byte for byte at A (Host still names B): the reason names B.
        replay = httpx.get(gateway_a.url + path, headers={**headers, "host": authority_b})
        detail = _problem(replay, 401, f"signed for {b.url}", "not this gateway")
        assert gateway_a.url in detail

        # Replayed with A's Host: A cannot tell whose it was, but it does not verify here.
        _problem(httpx.get(gateway_a.url + path, headers=headers), 401, "does not verify")


# ---------------------------------------------------------------------- 403: authorization


def test_read_record_refused_without_matching_consent(cluster: Cluster, gateway_a: GatewayProcess) -> None:
    url, ledger = gateway_a.url, cluster.ledger
    patient, records = _patient_with_records(cluster, url)
    claim, lab = records["Claim"], records["Observation"]
    insurer = cluster.insurer_signer.key
    stranger = Account.create().key

    # Not a member at all: neither posting nor reading.
    posted = _send(stranger, "POST", f"{url}/fhir", json.dumps(bundle()).encode(), content_type=FHIR)
    _outcome(posted, 403, "does not sign for an active member", code="forbidden")
    _problem(
        _send(stranger, "GET", _record_url(url, claim, "TREAT")), 403, "does not sign for an active member"
    )

    # Members that are not this custodian: the insurer and clinic B may not post records here.
    posted = _send(insurer, "POST", f"{url}/fhir", json.dumps(bundle()).encode(), content_type=FHIR)
    _outcome(posted, 403, "needs a CLINIC member", "INSURER", code="forbidden")
    posted = _send(dev_key(11), "POST", f"{url}/fhir", json.dumps(bundle()).encode(), content_type=FHIR)
    _outcome(posted, 403, "only this custodian's staff", code="forbidden")

    # No consent at all.
    _problem(_send(insurer, "GET", _record_url(url, claim, "HPAYMT")), 403, "no consent", "CLAIMS", "HPAYMT")

    # A consent for another grantee: it works for the researcher, not for the insurer.
    _grant(cluster, url, patient, cluster.researcher.address, Category.CLAIMS, Purpose.HPAYMT, 1)
    read = CareLedgerClient(dev_key(13), ledger).read_record(claim, Purpose.HPAYMT)
    assert read.resource["resourceType"] == "Claim"
    _problem(_send(insurer, "GET", _record_url(url, claim, "HPAYMT")), 403, "no consent", "CLAIMS", "HPAYMT")

    # The insurer's own consent covers claims for payment, and nothing else.
    _grant(cluster, url, patient, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT, 2)
    assert CareLedgerClient(insurer, ledger).read_record(claim, Purpose.HPAYMT).consent_id is not None
    _problem(_send(insurer, "GET", _record_url(url, lab, "HPAYMT")), 403, "OBSERVATIONS", "HPAYMT")
    _problem(_send(insurer, "GET", _record_url(url, claim, "HOPERAT")), 403, "CLAIMS", "HOPERAT")


def test_read_record_refused_once_member_suspended(cluster: Cluster, gateway_a: GatewayProcess) -> None:
    url, members, council = gateway_a.url, cluster.ledger.members, cluster.council
    patient, records = _patient_with_records(cluster, url)
    member = Account.create()
    pid = members.propose_admit(
        council[0], member.address, Role.INSURER, f"insurer {member.address[:10]}", ""
    )
    assert members.vote(council[1], pid)
    _grant(cluster, url, patient, member.address, Category.CLAIMS, Purpose.HPAYMT, 1)
    assert _send(member.key, "GET", _record_url(url, records["Claim"], "HPAYMT")).status_code == 200

    pid = members.propose_suspend(council[0], member.address)
    assert members.vote(council[1], pid)
    past_head_max_age()  # the suspension was mined elsewhere: the gateway sees it within the bound
    refused = _send(member.key, "GET", _record_url(url, records["Claim"], "HPAYMT"))
    _problem(refused, 403, member.address, "does not sign for an active member")


# ---------------------------------------------------------------------- 4xx: bad input


def test_post_fhir_refused_for_bad_input(cluster: Cluster, database_url: str, tmp_path: Path) -> None:
    with running_gateway(
        cluster.devnet, cluster.clinic, dev_key(15), database_url, tmp_path / "a", max_body_bytes="100000"
    ) as gw:
        staff, fhir = dev_key(10), f"{gw.url}/fhir"

        def post(body: bytes, content_type: str = FHIR) -> httpx.Response:
            return _send(staff, "POST", fhir, body, content_type=content_type)

        _outcome(post(b'{"resourceType": "Observation",'), 400, "malformed JSON", code="structure")
        _outcome(post(b'{"resourceType": "Patient", "id": "\xff"}'), 400, "not valid UTF-8", code="structure")
        deep = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
        _outcome(post(deep), 400, "nested deeper than", code="too-costly")
        _outcome(post(b'["not", "an", "object"]'), 400, "must be a JSON object", code="structure")
        _outcome(post(b""), 400, "malformed JSON", code="structure")
        _outcome(post(b'{"resourceType": "Observation", "x": NaN}'), 400, "NaN", code="structure")
        _outcome(post(b'{"resourceType": "Observation", "resourceType": "Patient"}'), 400, "duplicate key")
        _outcome(post(b'{"resourceType": "Patient", "id": "a", "gender": "\\ud800"}'), 400, "surrogate")
        _outcome(post(b'{"resourceType": "Foo", "id": "a"}'), 400, "'Foo' is not a FHIR R4 resource type")

        statusless = observation()
        del statusless["status"]
        invalid = _outcome(post(json.dumps(statusless).encode()), 400)
        assert any("status" in expr for i in invalid["issue"] for expr in i.get("expression", [])), invalid
        injected = _outcome(post(json.dumps({**observation(), "id": "1' OR 1=1 --"}).encode()), 400)
        assert injected["issue"][0]["expression"] == ["Observation.id"], injected
        traversal = {**observation(), "subject": {"reference": "Patient/../../etc/passwd"}}
        refused = _outcome(
            post(json.dumps(traversal).encode()), 400, "is not a relative reference Patient/<id>"
        )
        assert refused["issue"][0]["expression"] == ["Observation.subject"], refused

        _outcome(
            post(json.dumps(observation()).encode(), "text/plain"),
            415,
            "application/fhir+json",
            "text/plain",
        )
        padded = {**observation(), "note": [{"text": "x" * 100_000}]}
        _outcome(post(json.dumps(padded).encode()), 413, "exceeds 100000 bytes", code="too-long")
        # Streamed without a Content-Length: cut off at the limit all the same.
        headers = {**sign_request(staff, "POST", fhir, b""), "content-type": FHIR}
        streamed = httpx.post(fhir, content=iter([b"x" * 10_000] * 15), headers=headers, timeout=30)
        _outcome(streamed, 413, "exceeds 100000 bytes", code="too-long")

        _outcome(post(json.dumps(bundle()).encode()), 409, "Patient/example", "not enrolled", code="conflict")


def test_post_fhir_refused_when_entry_names_another_patient(
    cluster: Cluster, gateway_a: GatewayProcess
) -> None:
    mismatched = bundle()
    mismatched["entry"][3]["resource"]["subject"] = {"reference": "Patient/someone-else"}
    posted = _send(
        dev_key(10), "POST", f"{gateway_a.url}/fhir", json.dumps(mismatched).encode(), content_type=FHIR
    )
    body = _outcome(posted, 422, "Patient/someone-else", "Patient/example")
    assert body["issue"][0]["expression"] == ["Bundle.entry[3].resource.subject"], body


def test_read_record_refused_for_bad_ids_and_purposes(cluster: Cluster, gateway_a: GatewayProcess) -> None:
    url, staff = gateway_a.url, dev_key(10)

    def get(path: str) -> httpx.Response:
        return _send(staff, "GET", url + path)

    _problem(get(f"/records/{NO_RECORD}?purpose=TREAT"), 404, "no such record")
    _problem(get("/records/0xnot-a-record?purpose=TREAT"), 404, "32 bytes of hex")
    _problem(get(f"/records/0x{'zz' * 32}?purpose=TREAT"), 404, "32 bytes of hex")
    _problem(get("/records/0x' OR 1=1 --?purpose=TREAT"), 404, "32 bytes of hex")
    _problem(get("/patients/0x' OR 1=1 --/records"), 404, "no such patient")
    _problem(get("/patients/0x%27%3B%20DROP%20TABLE%20records%3B--/records"), 404, "no such patient")
    _problem(get("/patients/0x' OR 1=1 --/disclosures"), 404, "not a pseudonym")
    _problem(get("/jobs/1' OR 1=1 --"), 422, "job_id", "integer")
    _problem(get("/jobs/-1"), 404, "no relay job")
    # Traversal never reaches a route, nor a file.
    for path in ("/records/..%2F..%2Fetc%2Fpasswd?purpose=TREAT", "/patients/..%2F..%2Fetc%2Fpasswd/records"):
        traversal = get(path)
        assert traversal.status_code == 404, traversal.text
        _no_leak(traversal)

    _problem(get(f"/records/{NO_RECORD}?purpose=PAYMT"), 422, "unknown purpose PAYMT")
    _problem(get(f"/records/{NO_RECORD}?purpose=treat"), 422, "purpose")
    _problem(get(f"/records/{NO_RECORD}"), 422, "purpose")


def test_request_refused_by_framework_answered_in_documented_shape(gateway_a: GatewayProcess) -> None:
    url, staff = gateway_a.url, dev_key(10)
    unrouted = _problem(_send(staff, "GET", f"{url}/patients/..%2F..%2Fetc%2Fpasswd/records"), 404)
    assert "not found" in unrouted.lower(), unrouted
    not_allowed = _send(staff, "DELETE", f"{url}/records/{NO_RECORD}")
    assert "not allowed" in _problem(not_allowed, 405).lower() and "GET" in not_allowed.headers["allow"]
    body = b'{"patient": "\xff", "localReference": "Patient/x"}'
    _problem(_send(staff, "POST", f"{url}/enrollments", body, content_type="application/json"), 400, "UTF-8")
    _outcome(_send(staff, "GET", f"{url}/fhir"), 405)


def test_request_refused_for_ids_out_of_domain(gateway_a: GatewayProcess) -> None:
    url, staff = gateway_a.url, dev_key(10)
    _problem(_send(staff, "GET", f"{url}/patients/0x' OR 1=1 --/consents"), 404, "no such patient")
    _problem(_send(staff, "GET", f"{url}/jobs/{2**64}"), 404, "no relay job")


# ---------------------------------------------------------------------- break-glass


def test_break_glass_read_flagged_logged_and_limited(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    with running_gateway(
        cluster.devnet, cluster.clinic, dev_key(15), database_url, tmp_path / "a", break_glass_per_hour="2"
    ) as gw:
        _, records = _patient_with_records(cluster, gw.url)
        lab, lab_url = records["Observation"], _record_url(gw.url, records["Observation"], "ETREAT")
        reason, actor = "unconscious on arrival, no consent reachable", "dr.okafor@clinic-b"
        clinic_b = CareLedgerClient(dev_key(11), cluster.ledger)

        read = clinic_b.read_record(lab, Purpose.ETREAT, break_glass_reason=reason, acting_user=actor)
        assert read.resource["resourceType"] == "Observation"
        assert read.break_glass and read.consent_id is None and "careledger-consent-id" not in read.headers
        wait_until(
            lambda: _logged_break_glass(cluster, lab, Purpose.ETREAT, reason),
            what="the ETREAT break-glass read to be logged on chain",
        )

        # Without the acting user (absent, or signed but empty): refused, and not counted.
        only_reason = {"careledger-break-glass-reason": reason}
        _problem(_send(dev_key(11), "GET", lab_url, signed=only_reason), 403, "careledger-acting-user")
        empty_actor = {**only_reason, "careledger-acting-user": ""}
        _problem(_send(dev_key(11), "GET", lab_url, signed=empty_actor), 403, "careledger-acting-user")

        # Break-glass is for clinics only.
        both = {**only_reason, "careledger-acting-user": actor}
        _problem(_send(cluster.insurer_signer.key, "GET", lab_url, signed=both), 403, "CLINIC", "INSURER")

        # The second read is within the limit of 2 an hour; the third is not.
        assert _send(dev_key(11), "GET", lab_url, signed=both).status_code == 200
        _problem(
            _send(dev_key(11), "GET", lab_url, signed=both), 429, "break-glass limit", "2 in the last hour"
        )


def test_break_glass_read_allowed_with_purpose_btg(cluster: Cluster, gateway_a: GatewayProcess) -> None:
    patient, records = _patient_with_records(cluster, gateway_a.url)
    lab = records["Observation"]
    reason, actor = "cardiac arrest in the waiting room", "dr.okafor@clinic-b"

    refused = _send(dev_key(11), "GET", _record_url(gateway_a.url, lab, "BTG"))
    _problem(refused, 403, "break-glass needs the signed headers")

    clinic_b = CareLedgerClient(dev_key(11), cluster.ledger)
    read = clinic_b.read_record(lab, Purpose.BTG, break_glass_reason=reason, acting_user=actor)
    assert read.break_glass and read.consent_id is None
    wait_until(
        lambda: _logged_break_glass(cluster, lab, Purpose.BTG, reason),
        what="the BTG break-glass read to be logged on chain",
    )

    # The patient sees it in their accounting of disclosures, flagged.
    me = CareLedgerClient(patient.key, cluster.ledger)
    history = me.call("GET", f"{gateway_a.url}/patients/{patient.address}/disclosures")
    flagged = [d for d in history if d["recordId"] == "0x" + lab.hex()]
    assert len(flagged) == 1 and flagged[0]["breakGlass"] is True and flagged[0]["purpose"] == "BTG"
    assert flagged[0]["member"] == cluster.clinic_b.address and flagged[0]["consentId"] is None
