"""Consent: patients' signed grants and revocations relayed on chain; their history read back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from careledger import errors
from careledger.chain.eip712 import Grant, Revocation
from careledger.codes import GRANTABLE_PURPOSES, Category, MemberStatus, mask
from careledger.services import fhir, fhir_consent
from careledger.services.enrollment import check_patient_signature
from careledger.services.gateway import Gateway
from careledger.services.jobs import JobStatus, queue_job, queue_job_async, wait_for_job, wait_for_job_async
from careledger.services.requests import Principal
from careledger.store.repositories import Patients

ALL_CATEGORIES = mask(Category)
GRANTABLE = mask(GRANTABLE_PURPOSES)


@dataclass(frozen=True)
class ConsentView:
    consent_id: bytes
    patient: str
    grantee: str
    index: int
    categories: int
    purposes: int
    valid_from: int
    valid_until: int
    granted_block: int
    granted_tx: str
    revoked_block: int | None
    revoked_tx: str | None

    def status(self, now: float) -> str:
        if self.revoked_block is not None:
            return "revoked"
        if now >= self.valid_until:
            return "expired"
        if now < self.valid_from:
            return "not-yet-valid"
        return "active"


def submit_grant(
    gw: Gateway, principal: Principal, message: Mapping[str, Any], signature: bytes, *, wait_s: float = 10.0
) -> JobStatus:
    """Check a patient's signed grant (fields of the EIP-712 Grant) as the contract will, then relay it."""
    job = queue_job(gw, "grant", _grant_job(gw, principal, message, signature))
    return wait_for_job(gw, job, wait_s)


async def submit_grant_async(
    gw: Gateway, principal: Principal, message: Mapping[str, Any], signature: bytes, *, wait_s: float = 10.0
) -> JobStatus:
    """submit_grant for an event loop: the job's commit and its mining are awaited, so a
    patient waiting for the chain holds no thread."""
    job = await queue_job_async(gw, "grant", _grant_job(gw, principal, message, signature))
    return await wait_for_job_async(gw, job, wait_s)


def _grant_job(
    gw: Gateway, principal: Principal, message: Mapping[str, Any], signature: bytes
) -> dict[str, Any]:
    """The relay job of a grant, once it passed the contract's own checks here."""
    grant = Grant(**message)
    if principal.keyid != grant.patient:
        raise errors.Forbidden("a grant is submitted by the patient who signed it")
    if grant.categories == 0 or grant.categories & ~ALL_CATEGORIES:
        raise errors.InvalidRequest("categories must be a non-empty set of known categories")
    if grant.purposes == 0 or grant.purposes & ~GRANTABLE:
        raise errors.InvalidRequest("purposes must be a non-empty set of grantable purposes (never BTG)")
    if grant.valid_until <= grant.valid_from or grant.valid_until <= gw.clock():
        raise errors.InvalidRequest("the validity window is empty or already over")
    if grant.deadline < gw.clock():
        raise errors.InvalidRequest("the grant's deadline has passed")
    if gw.ledger.members.status_of(grant.grantee) is MemberStatus.NONE:
        raise errors.InvalidRequest(f"grantee {grant.grantee} is not a member of this network")
    check_patient_signature(gw, grant.patient, grant.digest(gw.ledger.consent_domain), signature)
    return {"message": grant.to_json(), "signature": signature.hex()}


def submit_revocation(
    gw: Gateway, principal: Principal, message: Mapping[str, Any], signature: bytes, *, wait_s: float = 10.0
) -> JobStatus:
    """Relay a patient's signed revocation at once (revocations go first in the relayer)."""
    revocation = Revocation(**{**message, "consent_id": _bytes32(message["consent_id"])})
    if principal.keyid != revocation.patient:
        raise errors.Forbidden("a revocation is submitted by the patient who signed it")
    consent = next(
        (c for c in consents_of(gw, revocation.patient) if c.consent_id == revocation.consent_id), None
    )
    if consent is None:
        raise errors.NotFound("no such consent of this patient")
    if consent.revoked_block is not None:
        raise errors.Conflict("this consent is already revoked")
    check_patient_signature(gw, revocation.patient, revocation.digest(gw.ledger.consent_domain), signature)
    payload = {
        "message": revocation.to_json(),
        "grantee": consent.grantee,
        "index": consent.index,
        "signature": signature.hex(),
    }
    return wait_for_job(gw, queue_job(gw, "revoke", payload), wait_s)


def consents_of(gw: Gateway, patient: str) -> list[ConsentView]:
    """A patient's consents as the chain tells them, with revocations applied."""
    if not is_address(patient):
        raise errors.NotFound("no such patient: a pseudonym is an Ethereum address")
    views: dict[bytes, ConsentView] = {}
    for event in gw.ledger.consents.history(patient):
        if event.kind == "granted":
            views[event.consent_id] = ConsentView(
                event.consent_id,
                event.patient,
                event.grantee,
                event.index,
                event.categories,
                event.purposes,
                event.valid_from,
                event.valid_until,
                event.block_number,
                event.tx_hash,
                None,
                None,
            )
        elif event.consent_id in views:
            granted = views[event.consent_id]
            views[event.consent_id] = replace(
                granted, revoked_block=event.block_number, revoked_tx=event.tx_hash
            )
    return list(views.values())


def _bytes32(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else bytes.fromhex(value.removeprefix("0x"))


def import_fhir_consent(gw: Gateway, principal: Principal, body: bytes) -> list[dict[str, Any]]:
    """A FHIR R4 Consent turned into the EIP-712 grants it stands for, ready for its patient to sign.

    The Consent must be about the signing patient as this custodian knows them, and must
    name its recipients by member address (identifier system urn:careledger:member).
    """
    consent = fhir.parse_json(
        body, max_depth=gw.settings.max_json_depth, max_bytes=gw.settings.max_body_bytes
    )
    with gw.db.session() as s:
        enrolled = Patients(s).by_address(principal.keyid)
        reference = None if enrolled is None else enrolled.local_reference
    if reference is None:
        raise errors.Conflict("import a Consent at a custodian where you are enrolled")
    named = fhir.patient_reference(consent)
    if named != reference:
        raise fhir.PatientMismatch(
            [fhir.Issue("business-rule", f"is about {named}, not about you", "Consent.patient")]
        )
    terms = fhir_consent.consent_to_grant_terms(consent, resolve_actor=_no_directory)
    now = int(gw.clock())
    grants = [
        Grant(
            principal.keyid,
            t.grantee,
            t.categories,
            t.purposes,
            t.valid_from,
            t.valid_until,
            int.from_bytes(gw.random_bytes(16), "big"),
            now + 3600,
        )
        for t in terms
    ]
    return [g.typed_data(gw.ledger.consent_domain) for g in grants]


def export_fhir_consents(gw: Gateway, principal: Principal, patient: str) -> dict[str, Any]:
    """A patient's consents on chain as FHIR R4 Consents (a searchset Bundle)."""
    if principal.keyid.lower() != patient.lower():
        principal.require_member()
    views = [
        fhir_consent.GrantView(
            consent_id="0x" + c.consent_id.hex(),
            grantee=c.grantee,
            categories=c.categories,
            purposes=c.purposes,
            valid_from=c.valid_from,
            valid_until=c.valid_until,
            revoked=c.revoked_block is not None,
            granted_at=gw.ledger.block_timestamp(c.granted_block),
        )
        for c in consents_of(gw, patient)
    ]
    return fhir_consent.grants_to_fhir_consent(f"Patient/{to_checksum_address(patient)}", views)


def _no_directory(reference: dict[str, Any]) -> str:
    raise fhir.FhirInvalid(
        [
            fhir.Issue(
                "not-found",
                "name the recipient by identifier (system urn:careledger:member, value: its address)",
            )
        ]
    )
