"""Consent: patients' signed grants and revocations relayed on chain; their history read back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from eth_utils.address import is_address

from careledger import errors
from careledger.chain.eip712 import Grant, Revocation
from careledger.codes import GRANTABLE_PURPOSES, Category, MemberStatus, mask
from careledger.services.enrollment import check_patient_signature
from careledger.services.gateway import Gateway
from careledger.services.jobs import JobStatus, queue_job, wait_for_job
from careledger.services.requests import Principal

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
    if gw.ledger.members.get_member(grant.grantee).status is MemberStatus.NONE:
        raise errors.InvalidRequest(f"grantee {grant.grantee} is not a member of this network")
    check_patient_signature(gw, grant.patient, grant.digest(gw.ledger.consent_domain), signature)
    job = queue_job(gw, "grant", {"message": grant.to_json(), "signature": signature.hex()})
    return wait_for_job(gw, job, wait_s)


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
