"""HTTP client of the gateway protocol (docs/signing.md, docs/api.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account import Account

from careledger import errors
from careledger.auth.signatures import sign_request
from careledger.chain.clients import Ledger
from careledger.chain.eip712 import Erasure, Grant, Revocation
from careledger.codes import Purpose
from careledger.crypto.commitments import check_plaintext

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class VerifiedRecord:
    """A record whose bytes were checked against the commitment anchored on chain."""

    resource: dict[str, Any]
    content: bytes
    record_id: bytes
    custodian: str
    patient: str
    headers: dict[str, str]

    @property
    def break_glass(self) -> bool:
        return self.headers.get("careledger-break-glass") == "true"

    @property
    def consent_id(self) -> bytes | None:
        value = self.headers.get("careledger-consent-id")
        return bytes.fromhex(value[2:]) if value else None


class CareLedgerClient:
    """Speaks to gateways as one key: a member's signer key or a patient's pseudonym."""

    def __init__(
        self,
        private_key: bytes | str,
        ledger: Ledger | None = None,
        *,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._key = private_key
        self.address = str(Account.from_key(private_key).address)
        self.ledger = ledger
        self._http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ transport

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        signed_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request signed for `url` (scheme, authority, path and query all covered)."""
        headers = sign_request(self._key, method, url, body, signed_headers)
        if content_type:
            headers["content-type"] = content_type
        try:
            return self._http.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise errors.GatewayUnavailable(f"gateway at {url} unreachable: {exc}") from None

    def call(self, method: str, url: str, payload: Any = None, **kwargs: Any) -> Any:
        """A JSON request; the parsed answer, or GatewayRefused with the gateway's reason."""
        body = b"" if payload is None else json.dumps(payload).encode()
        response = self.request(
            method, url, body=body, content_type="application/json" if payload else None, **kwargs
        )
        return _answer(response)

    # ------------------------------------------------------------------ members: records

    def post_fhir(self, base_url: str, document: dict[str, Any]) -> dict[str, Any]:
        response = self.request(
            "POST", f"{base_url}/fhir", body=json.dumps(document).encode(), content_type=FHIR_JSON
        )
        answer: dict[str, Any] = _answer(response)
        return answer

    def start_enrollment(self, base_url: str, patient: str, local_reference: str) -> dict[str, Any]:
        """Staff: bind a pseudonym to a local reference; answers the typed data the patient signs."""
        answer: dict[str, Any] = self.call(
            "POST", f"{base_url}/enrollments", {"patient": patient, "localReference": local_reference}
        )
        return answer

    def read_record(
        self,
        record_id: bytes,
        purpose: Purpose,
        *,
        base_url: str | None = None,
        break_glass_reason: str | None = None,
        acting_user: str | None = None,
    ) -> VerifiedRecord:
        """Find the record's custodian on chain, read it there, and check it against its commitment."""
        ledger = self._need_ledger()
        anchored = ledger.records.anchored(record_id)
        if anchored is None:
            raise errors.VerificationFailed(f"record 0x{record_id.hex()} is not anchored on chain")
        url = base_url or ledger.members.get_member(anchored.custodian).endpoint
        signed: dict[str, str] = {}
        if break_glass_reason is not None:
            signed = {
                "careledger-break-glass-reason": break_glass_reason,
                "careledger-acting-user": acting_user or "",
            }
        response = self.request(
            "GET", f"{url}/records/0x{record_id.hex()}?purpose={purpose.name}", signed_headers=signed
        )
        if response.status_code != 200:
            _answer(response)
        headers = {k.lower(): v for k, v in response.headers.items()}
        salt = bytes.fromhex(headers["careledger-salt"][2:])
        ciphertext_sha256 = bytes.fromhex(headers["careledger-ciphertext-sha256"][2:])
        if not check_plaintext(anchored.commitment, salt, response.content, ciphertext_sha256):
            raise errors.VerificationFailed(
                f"record 0x{record_id.hex()} does not match its commitment on chain"
            )
        return VerifiedRecord(
            json.loads(response.content),
            response.content,
            record_id,
            anchored.custodian,
            anchored.patient,
            headers,
        )

    # ------------------------------------------------------------------ patients

    def complete_enrollment(self, base_url: str, typed_data: dict[str, Any]) -> dict[str, Any]:
        """Patient: sign the enrollment the staff started, after checking it names this key."""
        message = typed_data["message"]
        if message["patient"].lower() != self.address.lower():
            raise errors.InvalidRequest("this enrollment is for another pseudonym")
        signature = Account.sign_typed_data(self._key, full_message=typed_data).signature
        payload = {
            "nonce": message["nonce"],
            "deadline": message["deadline"],
            "signature": "0x" + signature.hex(),
        }
        answer: dict[str, Any] = self.call(
            "POST", f"{base_url}/enrollments/{self.address}/signature", payload
        )
        return answer

    def grant(self, base_url: str, grant: Grant) -> dict[str, Any]:
        ledger = self._need_ledger()
        signature = grant.sign(self._key, ledger.consent_domain)
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
        answer: dict[str, Any] = self.call(
            "POST", f"{base_url}/consents/grants", {"message": message, "signature": "0x" + signature.hex()}
        )
        return answer

    def grant_typed(self, base_url: str, typed_data: dict[str, Any]) -> dict[str, Any]:
        """Sign and submit a Grant handed over as EIP-712 typed data (e.g. from a FHIR Consent),
        after checking it is this key's grant on this network's ConsentRegistry."""
        ledger = self._need_ledger()
        m, domain = typed_data["message"], typed_data["domain"]
        if m["patient"].lower() != self.address.lower():
            raise errors.InvalidRequest("this grant is for another pseudonym")
        expected = ledger.consent_domain.as_dict()
        if str(domain["verifyingContract"]).lower() != str(expected["verifyingContract"]).lower() or int(
            domain["chainId"]
        ) != int(expected["chainId"]):
            raise errors.VerificationFailed("the grant names another ConsentRegistry than this network's")
        grant = Grant(
            m["patient"],
            m["grantee"],
            m["categories"],
            m["purposes"],
            m["validFrom"],
            m["validUntil"],
            int(m["nonce"]),
            int(m["deadline"]),
        )
        return self.grant(base_url, grant)

    def revoke(self, base_url: str, revocation: Revocation) -> dict[str, Any]:
        ledger = self._need_ledger()
        signature = revocation.sign(self._key, ledger.consent_domain)
        message = {
            "patient": revocation.patient,
            "consentId": "0x" + revocation.consent_id.hex(),
            "nonce": revocation.nonce,
            "deadline": revocation.deadline,
        }
        answer: dict[str, Any] = self.call(
            "POST",
            f"{base_url}/consents/revocations",
            {"message": message, "signature": "0x" + signature.hex()},
        )
        return answer

    def records(self, base_url: str, patient: str | None = None) -> list[dict[str, Any]]:
        """The records a custodian keeps of a pseudonym (this key's own by default)."""
        listed: list[dict[str, Any]] = self.call(
            "GET", f"{base_url}/patients/{patient or self.address}/records"
        )
        return listed

    def consents(self, base_url: str, patient: str | None = None) -> list[dict[str, Any]]:
        """A pseudonym's consents as the chain holds them (this key's own by default)."""
        listed: list[dict[str, Any]] = self.call(
            "GET", f"{base_url}/patients/{patient or self.address}/consents"
        )
        return listed

    def disclosures(self, base_url: str, patient: str | None = None) -> list[dict[str, Any]]:
        """The accounting of disclosures of a pseudonym's records, from the chain."""
        listed: list[dict[str, Any]] = self.call(
            "GET", f"{base_url}/patients/{patient or self.address}/disclosures"
        )
        return listed

    def erase(self, base_url: str, erasure: Erasure) -> dict[str, Any]:
        """Patient: the signed erasure of one record (its latest version) at its custodian."""
        ledger = self._need_ledger()
        signature = erasure.sign(self._key, ledger.record_domain)
        body = {"nonce": erasure.nonce, "deadline": erasure.deadline, "signature": "0x" + signature.hex()}
        answer: dict[str, Any] = self.call(
            "POST", f"{base_url}/records/0x{erasure.record_id.hex()}/erasure", body
        )
        return answer

    def _need_ledger(self) -> Ledger:
        if self.ledger is None:
            raise errors.ConfigurationError("this needs the chain: give the client a Ledger")
        return self.ledger


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            raise errors.GatewayRefused(response.status_code, response.text[:200]) from None
        detail = (
            body.get("detail")
            or body.get("error")  # a relay job that failed
            or "; ".join(i.get("diagnostics", "") for i in body.get("issue", []))
        )
        raise errors.GatewayRefused(response.status_code, detail or response.reason_phrase)
    return response.json() if response.content else None
