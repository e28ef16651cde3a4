"""Enrollment: a patient's pseudonym bound to this custodian's local patient reference.

The custodian's staff start it (the local reference stays here; a salted commitment to it
goes on chain); the patient finishes it by signing the EIP-712 Enrollment. Records are
accepted only for enrolled patients, so a typo can never bind records to a stranger's key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from careledger import errors
from careledger.chain.clients import erc1271_valid
from careledger.chain.eip712 import Enrollment
from careledger.codes import Role
from careledger.crypto.secp256k1 import recover_address
from careledger.services.gateway import Gateway
from careledger.services.jobs import JobStatus, queue_job, wait_for_job
from careledger.services.requests import Principal
from careledger.store.models import PatientRow
from careledger.store.repositories import Patients

OFFER_VALIDITY_S = 24 * 3600
LOCAL_REFERENCE = re.compile(r"Patient/[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True)
class EnrollmentOffer:
    """What the patient signs: the EIP-712 Enrollment as typed data."""

    message: Enrollment
    typed_data: dict[str, Any]
    status: str


def reference_commitment(salt: bytes, local_reference: str) -> bytes:
    return bytes(keccak(salt + local_reference.encode()))


def start_enrollment(
    gw: Gateway, principal: Principal, patient: str, local_reference: str
) -> EnrollmentOffer:
    """Staff of this custodian bind a pseudonym to a local reference; returns what the patient signs."""
    if principal.require_member(Role.CLINIC) != gw.custodian:
        raise errors.Forbidden("only this custodian's staff start enrollments here")
    if not is_address(patient):
        raise errors.InvalidRequest("patient must be an Ethereum address (the patient's pseudonym here)")
    reference = local_reference.strip()
    if not LOCAL_REFERENCE.fullmatch(reference):
        raise errors.InvalidRequest("localReference must be the EHR's FHIR reference Patient/<id>")
    patient = to_checksum_address(patient)
    with gw.db.session() as s:
        patients = Patients(s)
        row = patients.by_address(patient)
        if row is None:
            salt = gw.random_bytes(32)
            row = patients.add(
                PatientRow(
                    address=patient,
                    local_reference=reference,
                    reference_salt=salt,
                    reference_commitment=reference_commitment(salt, reference),
                    status="pending",
                    created_at=datetime.fromtimestamp(gw.clock(), UTC),
                )
            )
        elif row.local_reference != reference:
            raise errors.Conflict("this pseudonym is already bound to another local reference here")
        commitment, status = row.reference_commitment, row.status
    message = Enrollment(patient, gw.custodian, commitment, _nonce(gw), int(gw.clock()) + OFFER_VALIDITY_S)
    return EnrollmentOffer(message, message.typed_data(gw.ledger.record_domain), status)


def complete_enrollment(
    gw: Gateway, principal: Principal, nonce: int, deadline: int, signature: bytes, *, wait_s: float = 10.0
) -> JobStatus:
    """The patient's signed Enrollment, checked here and relayed on chain."""
    with gw.db.session() as s:
        row = Patients(s).by_address(principal.keyid)
        if row is None:
            raise errors.NotFound("no enrollment was started for this pseudonym here")
        commitment = row.reference_commitment
    message = Enrollment(principal.keyid, gw.custodian, commitment, nonce, deadline)
    check_patient_signature(gw, principal.keyid, message.digest(gw.ledger.record_domain), signature)
    if deadline < gw.clock():
        raise errors.InvalidRequest("the enrollment's deadline has passed")
    job = queue_job(gw, "enroll", {"message": message.to_json(), "signature": signature.hex()})
    return wait_for_job(gw, job, wait_s)


def check_patient_signature(gw: Gateway, patient: str, digest: bytes, signature: bytes) -> None:
    """A patient's EIP-712 signature, as the contracts will check it (ECDSA, else ERC-1271)."""
    if recover_address(digest, signature) == patient:
        return
    if not erc1271_valid(gw.ledger.w3, patient, digest, signature):
        raise errors.InvalidRequest("the signature is not the patient's over this message")


def _nonce(gw: Gateway) -> int:
    """A random unordered nonce: any unused value works (Permit2-style bitmap on chain)."""
    return int.from_bytes(gw.random_bytes(16), "big")
