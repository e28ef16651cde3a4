"""Consent: patients' signed grants and revocations relayed on chain; their history read back."""

from __future__ import annotations

import threading
import time
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
from careledger.services.jobs import JobStatus, job_status, queue_job
from careledger.services.requests import Principal
from careledger.store.repositories import ChainJobs, Patients

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
    if gw.ledger.members.status_of(grant.grantee) is MemberStatus.NONE:
        raise errors.InvalidRequest(f"grantee {grant.grantee} is not a member of this network")
    check_patient_signature(gw, grant.patient, grant.digest(gw.ledger.consent_domain), signature)
    job = queue_job(gw, "grant", {"message": grant.to_json(), "signature": signature.hex()})
    return _waiter(gw).wait(job, wait_s)


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
    return _waiter(gw).wait(queue_job(gw, "revoke", payload), wait_s)


class _JobWaiter:
    """Requests waiting for their relay jobs, answered by one poller thread per gateway
    process (one query every POLL_S for all of them, instead of one per request)."""

    POLL_S = 0.02
    IDLE_EXIT_S = 2.0

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._lock = threading.Lock()
        self._waiting: dict[int, threading.Event] = {}
        self._thread: threading.Thread | None = None

    def wait(self, job_id: int, timeout: float) -> JobStatus:
        done = threading.Event()
        with self._lock:
            self._waiting[job_id] = done
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll, name="job-waiter", daemon=True)
                self._thread.start()
        try:
            done.wait(timeout)
        finally:
            with self._lock:
                self._waiting.pop(job_id, None)
        return job_status(self.gw, job_id)

    def _poll(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._lock:
                ids = list(self._waiting)
                if not ids and time.monotonic() - idle_since > self.IDLE_EXIT_S:
                    self._thread = None
                    return
            if ids:
                idle_since = time.monotonic()
                try:
                    with self.gw.db.session() as s:
                        finished = ChainJobs(s).finished_among(ids)
                except Exception:  # noqa: BLE001 - the store is away: waiters time out, answer from job_status
                    finished = []
                with self._lock:
                    for job_id in finished:
                        event = self._waiting.get(job_id)
                        if event is not None:
                            event.set()
            time.sleep(self.POLL_S)


_WAITERS: dict[int, _JobWaiter] = {}
_WAITERS_LOCK = threading.Lock()


def _waiter(gw: Gateway) -> _JobWaiter:
    with _WAITERS_LOCK:
        waiter = _WAITERS.get(id(gw))
        if waiter is None or waiter.gw is not gw:
            waiter = _WAITERS[id(gw)] = _JobWaiter(gw)
        return waiter


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
