"""Hostile input over real HTTP, the cases tests/backend/e2e/test_refusals.py leaves open.

Each test sends what an attacker (or a broken client) would and asserts the exact status and
reason. docs/security.md maps every hostile input of the threat model to the test that
proves it, here or in test_refusals.py, test_erasure.py and tests/backend/unit/auth.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from eth_account import Account

from careledger.api.problems import problem
from careledger.chain.devnet import dev_key
from careledger.chain.eip712 import Erasure, Grant, Revocation
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose, mask
from careledger.store.migrate import upgrade
from tests.backend.databases import sqlite_url
from tests.backend.e2e.test_refusals import (
    FHIR,
    _another_database,
    _funded_relayer,
    _no_leak,
    _outcome,
    _patient_with_records,
    _problem,
    _record_url,
    _send,
)
from tests.backend.gateways import (
    GatewayProcess,
    consent_grant,
    enroll,
    observation,
    records_of,
    running_gateway,
    wait_until,
)
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
MB = 1024 * 1024


@pytest.fixture(scope="module")
def gateway_sqlite(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """Clinic A's gateway on SQLite, shared by this module's refusals that are decided before or
    apart from the store (the one the store could change runs on both, through gateway_a)."""
    directory = tmp_path_factory.mktemp("hostile")
    database_url = sqlite_url(directory)
    upgrade(database_url)
    with running_gateway(cluster.devnet, cluster.clinic, dev_key(15), database_url, directory / "a") as gw:
        yield gw


# ---------------------------------------------------------------------- helpers


def _grant_body(cluster: Cluster, grant: Grant, signer: bytes | str) -> bytes:
    """The JSON body of POST /consents/grants: the grant's fields and `signer`'s EIP-712 signature."""
    signature = grant.sign(signer, cluster.ledger.consent_domain)
    message = {
        "patient": grant.patient,
        "grantee": grant.grantee,
        "categories": grant.categories,
        "purposes": grant.purposes,
        "validFrom": grant.valid_from,
        "validUntil": grant.valid_until,
        "nonce": grant.nonce,
        "deadline": grant.deadline,
    }
    return json.dumps({"message": message, "signature": "0x" + signature.hex()}).encode()


def _revocation_body(cluster: Cluster, revocation: Revocation, signer: bytes | str) -> bytes:
    signature = revocation.sign(signer, cluster.ledger.consent_domain)
    message = {
        "patient": revocation.patient,
        "consentId": "0x" + revocation.consent_id.hex(),
        "nonce": revocation.nonce,
        "deadline": revocation.deadline,
    }
    return json.dumps({"message": message, "signature": "0x" + signature.hex()}).encode()


def _erasure_body(cluster: Cluster, erasure: Erasure, signer: bytes | str) -> bytes:
    signature = erasure.sign(signer, cluster.ledger.record_domain)
    body = {"nonce": erasure.nonce, "deadline": erasure.deadline, "signature": "0x" + signature.hex()}
    return json.dumps(body).encode()


def _post_json(key: bytes | str, url: str, body: bytes) -> httpx.Response:
    return _send(key, "POST", url, body, content_type="application/json")


def _mine_until(cluster: Cluster, timestamp: int) -> None:
    """Mine empty blocks until the chain's latest block is later than `timestamp` (wall clock)."""

    def later() -> bool:
        cluster.ledger.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        return int(cluster.ledger.w3.eth.get_block("latest")["timestamp"]) > timestamp

    wait_until(later, timeout=60, what=f"a block after {timestamp}")


def _failed_job(response: httpx.Response, *reasons: str) -> dict[str, Any]:
    """A relay job the contract refused: 422 with the decoded revert in `error`."""
    assert response.status_code == 422, response.text
    job: dict[str, Any] = response.json()
    assert job["status"] == "failed" and job["result"] is None, job
    for reason in reasons:
        assert reason in job["error"], job
    _no_leak(response)
    return job


# ---------------------------------------------------------------------- consents


def test_read_refused_once_consent_expired_and_grant_replay_after_deadline(
    cluster: Cluster, gateway_sqlite: GatewayProcess
) -> None:
    url, insurer = gateway_sqlite.url, cluster.insurer_signer.key
    patient, records = _patient_with_records(cluster, url)
    claim_url = _record_url(url, records["Claim"], "HPAYMT")
    now = int(time.time())
    # One consent valid for 8 s; another, long-lived, whose signature is usable for 8 s: long
    # enough to be relayed, short enough to outlive.
    grant = Grant(
        patient.address, cluster.insurer.address, mask([Category.CLAIMS]), mask([Purpose.HPAYMT]),
        now - 60, now + 8, 11, now + 600,
    )  # fmt: skip
    research = Grant(
        patient.address, cluster.researcher.address, mask([Category.CLAIMS]), mask([Purpose.HRESCH]),
        now - 60, now + 3600, 12, now + 8,
    )  # fmt: skip
    research_body = _grant_body(cluster, research, patient.key)
    for body in (_grant_body(cluster, grant, patient.key), research_body):
        granted = _post_json(patient.key, f"{url}/consents/grants", body)
        assert granted.status_code == 200 and granted.json()["status"] == "done", granted.text
    assert _send(insurer, "GET", claim_url).status_code == 200

    _mine_until(cluster, grant.valid_until)
    no_consent = f"no consent of the patient lets {cluster.insurer.address} see CLAIMS for HPAYMT"
    _problem(_send(insurer, "GET", claim_url), 403, no_consent)
    listed = CareLedgerClient(patient.key, cluster.ledger).call(
        "GET", f"{url}/patients/{patient.address}/consents"
    )
    assert sorted(c["status"] for c in listed) == ["active", "expired"], listed

    # A signed grant replayed after its deadline.
    _problem(
        _post_json(patient.key, f"{url}/consents/grants", research_body),
        422,
        "the grant's deadline has passed",
    )
    _problem(_send(insurer, "GET", claim_url), 403, no_consent)


def test_consent_signatures_replayed_after_revocation_are_refused(
    cluster: Cluster, gateway_sqlite: GatewayProcess
) -> None:
    url, insurer = gateway_sqlite.url, cluster.insurer_signer.key
    patient, records = _patient_with_records(cluster, url)
    claim_url = _record_url(url, records["Claim"], "HPAYMT")
    grant = consent_grant(patient, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT, nonce=21)
    grant_body = _grant_body(cluster, grant, patient.key)
    granted = _post_json(patient.key, f"{url}/consents/grants", grant_body)
    assert granted.status_code == 200, granted.text
    consent_id = bytes.fromhex(granted.json()["result"]["consentId"][2:])
    assert _send(insurer, "GET", claim_url).status_code == 200

    revocation = Revocation(patient.address, consent_id, 22, int(time.time()) + 600)
    revocation_body = _revocation_body(cluster, revocation, patient.key)
    revoked = _post_json(patient.key, f"{url}/consents/revocations", revocation_body)
    assert revoked.status_code == 200 and revoked.json()["status"] == "done", revoked.text
    no_consent = f"no consent of the patient lets {cluster.insurer.address} see CLAIMS for HPAYMT"
    _problem(_send(insurer, "GET", claim_url), 403, no_consent)

    # The grant's signature again: its nonce is spent on chain, so the relay fails with the reason.
    _failed_job(
        _post_json(patient.key, f"{url}/consents/grants", grant_body),
        "UnorderedNoncesUsed",
        patient.address,
    )
    # The revocation again: already revoked.
    _problem(
        _post_json(patient.key, f"{url}/consents/revocations", revocation_body),
        409,
        "this consent is already revoked",
    )
    _problem(_send(insurer, "GET", claim_url), 403, no_consent)
    assert (
        cluster.ledger.consents.is_permitted(
            patient.address, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT
        )
        is None
    )


def test_patient_cannot_grant_or_revoke_for_another_patient(
    cluster: Cluster, gateway_sqlite: GatewayProcess
) -> None:
    url = gateway_sqlite.url
    victim, _ = _patient_with_records(cluster, url)
    mallory = Account.create()
    grant = consent_grant(victim, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT, nonce=31)

    # Mallory signs a grant naming the victim and submits it as herself.
    _problem(
        _post_json(mallory.key, f"{url}/consents/grants", _grant_body(cluster, grant, mallory.key)),
        403,
        "a grant is submitted by the patient who signed it",
    )
    # ... or gets it submitted under the victim's key: the EIP-712 signature is not the victim's.
    _problem(
        _post_json(victim.key, f"{url}/consents/grants", _grant_body(cluster, grant, mallory.key)),
        422,
        "the signature is not the patient's over this message",
    )

    granted = CareLedgerClient(victim.key, cluster.ledger).grant(url, grant)
    consent_id = bytes.fromhex(granted["result"]["consentId"][2:])
    deadline = int(time.time()) + 600
    # Mallory revokes the victim's consent: as the victim (refused), or as herself (no such consent).
    as_victim = Revocation(victim.address, consent_id, 32, deadline)
    _problem(
        _post_json(
            mallory.key, f"{url}/consents/revocations", _revocation_body(cluster, as_victim, mallory.key)
        ),
        403,
        "a revocation is submitted by the patient who signed it",
    )
    as_herself = Revocation(mallory.address, consent_id, 33, deadline)
    _problem(
        _post_json(
            mallory.key, f"{url}/consents/revocations", _revocation_body(cluster, as_herself, mallory.key)
        ),
        404,
        "no such consent of this patient",
    )
    _problem(
        _post_json(
            victim.key, f"{url}/consents/revocations", _revocation_body(cluster, as_victim, mallory.key)
        ),
        422,
        "the signature is not the patient's over this message",
    )
    assert (
        cluster.ledger.consents.is_permitted(
            victim.address, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT
        )
        == consent_id
    )


# ---------------------------------------------------------------------- erasure and custodians


def test_erasure_not_signed_by_the_records_patient_is_refused(
    cluster: Cluster, gateway_sqlite: GatewayProcess
) -> None:
    url = gateway_sqlite.url
    patient, records = _patient_with_records(cluster, url)
    claim = records["Claim"]
    erasure_url = f"{url}/records/0x{claim.hex()}/erasure"
    stranger = Account.create()
    deadline = int(time.time()) + 600

    # A stranger asks, signing both the request and the erasure.
    theirs = Erasure(stranger.address, claim, 41, deadline)
    _problem(
        _post_json(stranger.key, erasure_url, _erasure_body(cluster, theirs, stranger.key)),
        403,
        "an erasure is requested by the record's own patient",
    )
    # The patient's request carrying an erasure signature that is not the patient's.
    forged = Erasure(patient.address, claim, 42, deadline)
    _problem(
        _post_json(patient.key, erasure_url, _erasure_body(cluster, forged, stranger.key)),
        422,
        "the signature is not the patient's over this message",
    )
    # The custodian's own staff cannot erase a patient's record either.
    _problem(
        _post_json(dev_key(10), erasure_url, _erasure_body(cluster, theirs, stranger.key)),
        403,
        "an erasure is requested by the record's own patient",
    )
    assert {r["status"] for r in records_of(cluster, url, patient)} == {"anchored"}
    assert not cluster.ledger.records.is_erased(claim)


def test_record_of_another_custodian_is_unknown_here(
    cluster: Cluster, gateway_sqlite: GatewayProcess, tmp_path: Path
) -> None:
    with (
        _another_database("sqlite://", tmp_path / "b-db") as url_b,
        running_gateway(
            cluster.devnet, cluster.clinic_b, _funded_relayer(cluster), url_b, tmp_path / "b"
        ) as b,
    ):
        patient = Account.create()
        enroll(cluster, b.url, patient, "Patient/f001", staff_key=dev_key(11))
        CareLedgerClient(dev_key(11), cluster.ledger).post_fhir(b.url, observation("Patient/f001"))

        def anchored_at_b() -> bool:
            return any(r["status"] == "anchored" for r in records_of(cluster, b.url, patient))

        wait_until(anchored_at_b, timeout=30, what="the observation to be anchored at clinic B")
        record_id = bytes.fromhex(str(records_of(cluster, b.url, patient)[0]["recordId"])[2:])
        anchored = cluster.ledger.records.anchored(record_id)
        assert anchored is not None and anchored.custodian == cluster.clinic_b.address
        grant = consent_grant(patient, cluster.clinic.address, Category.OBSERVATIONS, Purpose.TREAT, 51)
        assert CareLedgerClient(patient.key, cluster.ledger).grant(b.url, grant)["status"] == "done"

        # At clinic A the record does not exist: neither for its (consented) reader nor its patient.
        a = gateway_sqlite.url
        _problem(
            _send(dev_key(10), "GET", _record_url(a, record_id, "TREAT")),
            404,
            "no such record at this custodian",
        )
        _problem(
            _send(patient.key, "GET", _record_url(a, record_id, "TREAT")),
            404,
            "no such record at this custodian",
        )
        erasure = Erasure(patient.address, record_id, 52, int(time.time()) + 600)
        _problem(
            _post_json(
                patient.key,
                f"{a}/records/0x{record_id.hex()}/erasure",
                _erasure_body(cluster, erasure, patient.key),
            ),
            404,
            "no such record at this custodian",
        )
        # Clinic B's staff cannot list or post at A either.
        _problem(
            _send(dev_key(11), "GET", f"{a}/patients/{patient.address}/records"),
            403,
            "another custodian's staff cannot list this custodian's records",
        )
        # At its own custodian it reads fine.
        assert _send(dev_key(10), "GET", _record_url(b.url, record_id, "TREAT")).status_code == 200


# ---------------------------------------------------------------------- break-glass flood


def test_break_glass_flood_beyond_the_limit_is_refused(
    cluster: Cluster, tmp_path: Path, database_url: str
) -> None:
    """On SQLite (the write lock) and on PostgreSQL (an advisory lock)."""
    limit, flood = 3, 12
    with running_gateway(
        cluster.devnet,
        cluster.clinic,
        dev_key(15),
        database_url,
        tmp_path / "a",
        break_glass_per_hour=str(limit),
    ) as gw:
        _, records = _patient_with_records(cluster, gw.url)
        lab_url = _record_url(gw.url, records["Observation"], "ETREAT")
        signed = {"careledger-break-glass-reason": "mass casualty triage", "careledger-acting-user": "dr.ade"}

        def read(_: int) -> httpx.Response:
            return _send(dev_key(11), "GET", lab_url, signed=signed)

        # All at once, as a flood would come.
        with ThreadPoolExecutor(flood) as pool:
            answers = list(pool.map(read, range(flood)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200] * limit + [429] * (flood - limit), statuses
        for refused in (r for r in answers if r.status_code == 429):
            _problem(refused, 429, "break-glass limit reached", f"{limit} in the last hour")
        # And after the flood, still refused.
        _problem(read(0), 429, "break-glass limit reached", f"{limit} in the last hour")


def test_break_glass_refusal_says_when_to_retry(cluster: Cluster, tmp_path: Path) -> None:
    database_url = sqlite_url(tmp_path)
    upgrade(database_url)
    with running_gateway(
        cluster.devnet, cluster.clinic, dev_key(15), database_url, tmp_path / "a", break_glass_per_hour="0"
    ) as gw:
        _, records = _patient_with_records(cluster, gw.url)
        signed = {"careledger-break-glass-reason": "stroke", "careledger-acting-user": "dr.ade"}
        refused = _send(
            dev_key(11), "GET", _record_url(gw.url, records["Observation"], "ETREAT"), signed=signed
        )
        _problem(refused, 429, "break-glass limit reached")
        assert int(refused.headers["retry-after"]) > 0, refused.headers


# ---------------------------------------------------------------------- oversized, deep, broken bodies


def _stream_until_answered(url: str, path: str, content_type: str, total: int) -> tuple[int, str, int]:
    """POST `total` bytes of a JSON array, chunked, stopping as soon as the gateway answers."""
    chunk = b"[" + b"1," * (64 * 1024) + b"1],"
    chunks = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(total // len(chunk) + 1))
    return _raw_post(url, path, content_type, "Transfer-Encoding: chunked", chunks)


def _raw_post(
    url: str, path: str, content_type: str, framing: str, chunks: Iterable[bytes]
) -> tuple[int, str, int]:
    """POST over a raw socket, sending `chunks` only while the gateway has not answered;
    returns (status, body, bytes sent before the answer came)."""
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        head += f"{framing}\r\n\r\n"
        sock.sendall(head.encode())
        answer = b""
        try:
            for chunk in chunks:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway answered and closed: read what it said
        sock.settimeout(30)
        while b"\r\n\r\n" not in answer or not _complete(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    head_text, _, body = answer.partition(b"\r\n\r\n")
    status = int(head_text.split(b" ", 2)[1])
    return status, body.decode(errors="replace"), sent


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def test_fifty_megabyte_json_refused_without_reading_it_whole(gateway_sqlite: GatewayProcess) -> None:
    url, limit, total = gateway_sqlite.url, 5 * MB, 50 * MB  # CARELEDGER_MAX_BODY_BYTES defaults to 5 MiB
    gateway = psutil.Process(gateway_sqlite.process.pid)
    rss_before = gateway.memory_info().rss

    # Declared up front: refused on the Content-Length alone, having received 64 KiB of the 50 MB.
    status, body, _ = _raw_post(url, "/fhir", FHIR, f"Content-Length: {total}", [b"[" * 65536])
    assert status == 413, body
    assert json.loads(body)["issue"][0]["diagnostics"] == f"the body exceeds {limit} bytes", body

    # Streamed without a length: cut off at the limit, answered while the client is still sending.
    status, body, sent = _stream_until_answered(url, "/fhir", FHIR, total)
    assert status == 413, body
    outcome = json.loads(body)
    assert outcome["issue"][0]["diagnostics"] == f"the body exceeds {limit} bytes", outcome
    assert sent < total, sent

    # A JSON route (problem documents): refused on the declared length alike.
    framing = f"Content-Length: {total}"
    status, body, _ = _raw_post(url, "/consents/grants", "application/json", framing, [b"{" * 65536])
    assert status == 413, body
    assert json.loads(body) == problem(413, "too-large", f"the body exceeds {limit} bytes"), body

    # Its memory did not take in the 50 MB (nor 2 x 50 MB).
    grown = gateway.memory_info().rss - rss_before
    assert grown < 40 * MB, f"the gateway grew by {grown / MB:.1f} MB"
    assert httpx.get(f"{url}/health").status_code == 200


def test_fifty_megabyte_json_streamed_to_a_json_route_refused_413(gateway_sqlite: GatewayProcess) -> None:
    url, limit = gateway_sqlite.url, 5 * MB
    status, body, sent = _stream_until_answered(url, "/consents/grants", "application/json", 50 * MB)
    assert sent < 50 * MB, sent
    assert status == 413, body
    assert json.loads(body) == problem(413, "too-large", f"the body exceeds {limit} bytes"), body


def test_deep_broken_and_oversized_json_on_problem_routes(
    cluster: Cluster, gateway_sqlite: GatewayProcess
) -> None:
    url, patient = gateway_sqlite.url, Account.create()
    grants = f"{url}/consents/grants"

    deep = b"[" * 100_000 + b"]" * 100_000
    _problem(_post_json(patient.key, grants, deep), 400, "the body is not a JSON document in UTF-8")
    broken_utf8 = b'{"message": {"patient": "\xff\xfe"}, "signature": "0x"}'
    _problem(_post_json(patient.key, grants, broken_utf8), 400, "the body is not a JSON document in UTF-8")
    nested_object = b'{"message":' * 5_000 + b"{}" + b"}" * 5_000
    _problem(_post_json(patient.key, grants, nested_object), 400, "the body is not a JSON document in UTF-8")
    # FHIR: invalid UTF-8 inside a transaction Bundle, and a deep Bundle.
    staff = dev_key(10)
    bundle = b'{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"id": "\xc3\x28"}}]}'
    _outcome(_send(staff, "POST", f"{url}/fhir", bundle, content_type=FHIR), 400, "not valid UTF-8")
    deep_bundle = b'{"resourceType": "Bundle", "entry": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    _outcome(
        _send(staff, "POST", f"{url}/fhir", deep_bundle, content_type=FHIR),
        400,
        "nested deeper than",
        code="too-costly",
    )


# ---------------------------------------------------------------------- ids


SQL = "0x' OR 1=1 --"
SQL_ENCODED = "0x%27%3B%20DROP%20TABLE%20records%3B--"
TRAVERSAL = "..%2F..%2F..%2Fetc%2Fpasswd"
NUL = "0x%00"


def test_ids_with_sql_metacharacters_traversal_or_nul_are_refused(
    cluster: Cluster, gateway_a: GatewayProcess
) -> None:
    url, staff, auditor = gateway_a.url, dev_key(10), dev_key(14)
    patient = Account.create()
    erasure = _erasure_body(
        cluster, Erasure(patient.address, bytes(32), 61, int(time.time()) + 600), patient.key
    )

    for bad in (SQL, SQL_ENCODED, NUL, "0x" + "00" * 31 + "%00"):
        _problem(
            _post_json(patient.key, f"{url}/records/{bad}/erasure", erasure),
            404,
            "a record id is 32 bytes of hex",
        )
        _problem(
            _send(staff, "GET", f"{url}/records/{bad}?purpose=TREAT"), 404, "a record id is 32 bytes of hex"
        )
        _problem(_send(staff, "GET", f"{url}/patients/{bad}/records"), 404, "no such patient here")
        _problem(_send(auditor, "GET", f"{url}/patients/{bad}/disclosures"), 404, "not a pseudonym")
        _problem(_send(staff, "GET", f"{url}/patients/{bad}/consents"), 404, "no such patient")
        _outcome(_send(staff, "GET", f"{url}/fhir/Consent?patient={bad}"), 404, "no such patient")
        signature = json.dumps({"nonce": 1, "deadline": 1, "signature": "0x" + "00" * 65}).encode()
        _problem(
            _post_json(staff, f"{url}/enrollments/{bad}/signature", signature),
            403,
            "an enrollment is signed by its patient",
        )
    enrollment = {"patient": SQL, "localReference": "Patient/x' OR 1=1 --"}
    refused = _post_json(staff, f"{url}/enrollments", json.dumps(enrollment).encode())
    _problem(refused, 422, "patient: String should match pattern")
    nul_reference = {"patient": patient.address, "localReference": "Patient/a\u0000b"}
    refused = _post_json(staff, f"{url}/enrollments", json.dumps(nul_reference).encode())
    _problem(refused, 422, "localReference must be the EHR's FHIR reference Patient/<id>")
    _problem(
        _send(auditor, "GET", f"{url}/audit/records?after={SQL_ENCODED}"),
        422,
        "not a cursor this gateway handed out",
    )

    # Traversal never reaches a route (nor a file): the decoded path matches nothing.
    for path in (f"/records/{TRAVERSAL}/erasure", f"/enrollments/{TRAVERSAL}/signature"):
        assert "not found" in _problem(_post_json(patient.key, url + path, erasure), 404).lower()
    assert "not found" in _problem(_send(staff, "GET", f"{url}/jobs/{TRAVERSAL}"), 404).lower()
    _outcome(_send(staff, "GET", f"{url}/fhir/Consent?patient={TRAVERSAL}"), 404, "no such patient")

    # A FHIR resource whose id or reference carries SQL or a NUL: invalid FHIR, named.
    for resource in (
        {**observation(), "id": "x'; DROP TABLE records; --"},
        {**observation(), "id": "a\u0000b"},
        observation("Patient/example\u0000' OR '1'='1"),
    ):
        body = _outcome(
            _send(staff, "POST", f"{url}/fhir", json.dumps(resource).encode(), content_type=FHIR), 400
        )
        assert body["issue"][0]["expression"][0].startswith("Observation."), body
    assert httpx.get(f"{url}/health").status_code == 200
