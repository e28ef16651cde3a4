"""Known-answer test from DESIGN.md and the refusals the profile promises."""

from __future__ import annotations

import base64

import pytest
from eth_account import Account

from careledger import errors
from careledger.auth.signatures import content_digest, sign_request, verify_request

KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
URI = "https://clinic-a.example.org/fhir/Bundle"
BODY = b'{"resourceType":"Bundle","type":"transaction","entry":[]}'
CREATED = 1767225600


def _signed(**kwargs: object) -> dict[str, str]:
    args: dict[str, object] = {"created": CREATED, "nonce": "6d6f636b2d6e6f6e6365", **kwargs}
    return sign_request(KEY, "POST", URI, BODY, **args)  # type: ignore[arg-type]


def test_design_test_vector() -> None:
    headers = _signed()
    assert headers["content-digest"] == "sha-256=:hPtiIDvbXh6qW64THXMJezN8KqmGVDbIm+jUG2HN/5Q=:"
    assert headers["signature"] == (
        "sig1=:IssjnS4NCZ5uuQW2frK6R1nYaZo8Ecba+cc5URAPhRc9z76RtYMcl8qWUOeha76hrJrAr3ZsgqIk29YtghpayRw=:"
    )
    assert headers["signature-input"] == (
        'sig1=("@method" "@target-uri" "content-digest");created=1767225600;expires=1767225900;'
        'nonce="6d6f636b2d6e6f6e6365";keyid="0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";tag="careledger"'
    )
    verified = verify_request(method="POST", target_uri=URI, body=BODY, headers=headers, now=CREATED + 1)
    assert verified.keyid == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert verified.params.nonce == "6d6f636b2d6e6f6e6365"


def test_careledger_headers_are_covered() -> None:
    headers = _signed(headers={"CareLedger-Acting-User": "dr-who", "careledger-break-glass-reason": "coma"})
    assert '"careledger-acting-user" "careledger-break-glass-reason");' in headers["signature-input"]
    verified = verify_request(method="POST", target_uri=URI, body=BODY, headers=headers, now=CREATED)
    assert verified.headers == {"careledger-acting-user": "dr-who", "careledger-break-glass-reason": "coma"}
    tampered = {**headers, "careledger-acting-user": "mallory"}
    with pytest.raises(errors.SignerMismatch):
        verify_request(method="POST", target_uri=URI, body=BODY, headers=tampered, now=CREATED)
    smuggled = {**_signed(), "careledger-acting-user": "mallory"}
    with pytest.raises(errors.SignatureMalformed, match="not covered: careledger-acting-user"):
        verify_request(method="POST", target_uri=URI, body=BODY, headers=smuggled, now=CREATED)


@pytest.mark.parametrize(
    ("now", "error"),
    [(CREATED - 61, errors.SignatureNotYetValid), (CREATED + 300 + 61, errors.SignatureExpired)],
)
def test_clock_window(now: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify_request(method="POST", target_uri=URI, body=BODY, headers=_signed(), now=now)


def test_expires_beyond_limit_is_refused() -> None:
    with pytest.raises(errors.SignatureMalformed, match="at most 300 s"):
        verify_request(method="POST", target_uri=URI, body=BODY, headers=_signed(expires_in=301), now=CREATED)


def test_tampered_body_query_and_method_are_refused() -> None:
    headers = _signed()
    with pytest.raises(errors.DigestMismatch):
        verify_request(method="POST", target_uri=URI, body=BODY + b" ", headers=headers, now=CREATED)
    forged = {**headers, "content-digest": content_digest(b"{}")}
    with pytest.raises(errors.DigestMismatch):
        verify_request(method="POST", target_uri=URI, body=b"{}x", headers=forged, now=CREATED)
    with pytest.raises(errors.SignerMismatch):
        verify_request(
            method="POST", target_uri=URI + "?purpose=TREAT", body=BODY, headers=headers, now=CREATED
        )
    with pytest.raises(errors.SignerMismatch):
        verify_request(method="PUT", target_uri=URI, body=BODY, headers=headers, now=CREATED)


def test_request_for_another_gateway_names_the_authority() -> None:
    headers = _signed()
    with pytest.raises(errors.WrongAuthority, match=r"signed for https://clinic-a\.example\.org"):
        verify_request(
            method="POST",
            target_uri="https://clinic-b.example.org/fhir/Bundle",
            body=BODY,
            headers=headers,
            now=CREATED,
            host_target_uri=URI,
        )


def test_keyid_of_someone_else_is_refused() -> None:
    other = Account.create().address
    headers = _signed()
    headers["signature-input"] = headers["signature-input"].replace(
        "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", other
    )
    with pytest.raises(errors.SignerMismatch):
        verify_request(method="POST", target_uri=URI, body=BODY, headers=headers, now=CREATED)


def test_contract_keyid_is_decided_by_erc1271() -> None:
    wallet = "0x" + "c0" * 20
    headers = _signed()
    headers["signature-input"] = headers["signature-input"].replace(
        "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", wallet
    )
    seen: list[str] = []

    def check(keyid: str, digest: bytes, signature: bytes) -> bool:
        seen.append(keyid)
        return True

    verified = verify_request(
        method="POST", target_uri=URI, body=BODY, headers=headers, now=CREATED, contract_check=check
    )
    assert seen == [verified.keyid] and verified.keyid.lower() == wallet


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("signature-input", 'sig2=("@method");created=1', "labelled sig1"),
        ("signature-input", 'sig1=("@method" "@target-uri" "content-digest");created=1', "does not follow"),
        ("signature", "sig1=:not base64!:", "not valid base64"),
        ("signature", "sig1=abc", "sig1=:<base64>:"),
    ],
)
def test_malformed_headers_are_refused(header: str, value: str, message: str) -> None:
    headers = {**_signed(), header: value}
    with pytest.raises(errors.SignatureMalformed, match=message):
        verify_request(method="POST", target_uri=URI, body=BODY, headers=headers, now=CREATED)


def test_unsigned_request_is_refused() -> None:
    with pytest.raises(errors.SignatureMissing):
        verify_request(method="GET", target_uri=URI, body=b"", headers={}, now=CREATED)


def test_high_s_twin_of_a_valid_signature_is_refused() -> None:
    headers = _signed()
    raw = base64.b64decode(headers["signature"][len("sig1=:") : -1])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = n - int.from_bytes(raw[32:64], "big")
    twin = raw[:32] + s.to_bytes(32, "big") + bytes([55 - raw[64]])  # v flips between 27 and 28
    forged = {**headers, "signature": "sig1=:" + base64.b64encode(twin).decode() + ":"}
    with pytest.raises(errors.SignatureMalformed, match="EIP-2"):
        verify_request(method="POST", target_uri=URI, body=BODY, headers=forged, now=CREATED)
