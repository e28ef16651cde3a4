"""Ingest: FHIR from the clinic's EHR, validated, sealed, stored pending and anchored later.

Idempotent as DESIGN.md defines it: the same (resourceType, id) for the same patient is the
same record; identical content is a no-op, changed content a new version that supersedes
the last. A transaction Bundle is atomic: every entry is stored, or none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from careledger import errors
from careledger.chain.merkle import record_id_of
from careledger.codes import Role
from careledger.crypto.commitments import commitment_from_digests, sha256
from careledger.crypto.envelope import open_meta, record_aad, seal_record
from careledger.crypto.keyfile import KeyRing
from careledger.services import fhir
from careledger.services.gateway import Gateway
from careledger.services.keys import record_key, sealing_key
from careledger.services.requests import Principal
from careledger.store.repositories import LatestVersion, PatientKey, Patients, Records

PATIENT_REFERENCE = re.compile(r"Patient/[A-Za-z0-9\-.]{1,64}")
RETRIES_ON_RACE = 2


@dataclass(frozen=True)
class IngestResult:
    is_bundle: bool
    results: list[fhir.EntryResult]

    def body(self) -> dict[str, Any]:
        if self.is_bundle:
            return fhir.transaction_response(self.results)
        (r,) = self.results
        note = "unchanged" if r.unchanged else ("created" if r.created else "updated")
        name = f"{r.resource_type}/{r.resource_id}"
        text = f"{name} version {r.version} {note}; record {r.record_id} is {r.anchor_status}"
        return {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": text}],
        }


def ingest(gw: Gateway, principal: Principal, body: bytes) -> IngestResult:
    """Store a FHIR resource or transaction Bundle posted by this custodian's staff."""
    if principal.require_member(Role.CLINIC) != gw.custodian:
        raise errors.Forbidden("only this custodian's staff send records to this gateway")
    document = fhir.parse_json(
        body, max_depth=gw.settings.max_json_depth, max_bytes=gw.settings.max_body_bytes
    )
    is_bundle = document.get("resourceType") == "Bundle"
    patient_ref, entries = _bundle_entries(document) if is_bundle else _single_entry(document)
    for attempt in range(RETRIES_ON_RACE + 1):
        try:
            return IngestResult(is_bundle, _store(gw, patient_ref, entries))
        except errors.StoreConflict:
            if attempt == RETRIES_ON_RACE:
                raise
    raise AssertionError("unreachable")


Entry = tuple[str, str, dict[str, Any]]  # resource type, id, resource


def _bundle_entries(bundle: dict[str, Any]) -> tuple[str, list[Entry]]:
    entries = fhir.split_transaction(bundle)
    patient_ref = _bundle_patient(entries)
    fhir.check_entries(entries, patient=patient_ref)
    return patient_ref, [(e.resource_type, e.resource_id, e.resource) for e in entries]


def _single_entry(resource: dict[str, Any]) -> tuple[str, list[Entry]]:
    patient_ref = fhir.patient_reference(resource)
    if patient_ref is None:
        raise fhir.FhirInvalid(
            [fhir.Issue("required", "the resource names no patient", resource.get("resourceType"))]
        )
    fhir.check_record(resource, patient=patient_ref)
    if not isinstance(resource.get("id"), str):
        issue = fhir.Issue("required", "a record needs its id: ingest is idempotent by type and id", "id")
        raise fhir.FhirInvalid([issue])
    return patient_ref, [(resource["resourceType"], resource["id"], resource)]


def _bundle_patient(entries: list[fhir.TransactionEntry]) -> str:
    """The transaction's patient: its Patient entry, else the first entry that names one.
    split_transaction then refuses, entry by entry, any resource about someone else."""
    for entry in entries:
        if entry.resource_type == "Patient":
            return f"Patient/{entry.resource_id}"
    for entry in entries:
        reference = fhir.patient_reference(entry.resource)
        if reference is not None:
            return reference
    issue = fhir.Issue(
        "business-rule", "a transaction must be about one patient; this one names none", "Bundle.entry"
    )
    raise fhir.FhirInvalid([issue])


def _store(
    gw: Gateway, patient_ref: str, entries: list[tuple[str, str, dict[str, Any]]]
) -> list[fhir.EntryResult]:
    with gw.db.session() as s:
        patient = Patients(s).by_local_reference(patient_ref)
        if patient is None or patient.status != "enrolled":
            raise errors.Conflict(
                f"{patient_ref} is not enrolled at this custodian: enroll the patient first"
            )
        kek = sealing_key(gw, s)
        records = Records(s)
        latest = records.latest_of(patient.id, [(t, i) for t, i, _ in entries])
        new: list[dict[str, Any]] = []
        results = [_store_version(gw, kek, latest.get((t, i)), new, patient, t, i, r) for t, i, r in entries]
        records.insert_many(new)
        return results


def _store_version(
    gw: Gateway,
    kek: KeyRing,
    latest: LatestVersion | None,
    new: list[dict[str, Any]],
    patient: PatientKey,
    resource_type: str,
    resource_id: str,
    resource: dict[str, Any],
) -> fhir.EntryResult:
    """One entry: unchanged, or a new version appended to `new` (stored by the caller)."""
    content = fhir.canonical_json(resource, parsed=True)  # from parse_json, references rewritten
    content_sha256 = sha256(content)
    key = record_key(gw.custodian, patient.address, resource_type, resource_id)
    if latest is not None:
        if latest.status == "erased":
            raise errors.Conflict(f"{resource_type}/{resource_id} was erased at the patient's request")
        assert latest.sealed_meta is not None and latest.wrapped_key is not None
        meta = open_meta(latest.sealed_meta, latest.wrapped_key, record_aad(key, latest.version), kek)
        if meta.plaintext_sha256 == content_sha256:
            return fhir.EntryResult(
                resource_type,
                resource_id,
                latest.version,
                False,
                True,
                "0x" + latest.record_id.hex(),
                latest.status,
            )
    version = 1 if latest is None else latest.version + 1
    salt = gw.random_bytes(32)
    sealed = seal_record(
        content,
        salt,
        record_aad(key, version),
        kek,
        random_bytes=gw.random_bytes,
        plaintext_sha256=content_sha256,
    )
    ciphertext_sha256 = sha256(sealed.ciphertext)
    commitment = commitment_from_digests(salt, content_sha256, ciphertext_sha256)
    record_id = record_id_of(gw.custodian, patient.address, commitment)
    new.append(
        {
            "record_id": record_id,
            "patient_id": patient.id,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "version": version,
            "category": int(fhir.category_of(resource_type)),
            "ciphertext": sealed.ciphertext,
            "wrapped_key": sealed.wrapped_key,
            "kek_id": sealed.key_id,
            "sealed_meta": sealed.sealed_meta,
            "ciphertext_sha256": ciphertext_sha256,
            "commitment": commitment,
            "supersedes": None if latest is None else latest.record_id,
            "status": "pending",
            "created_at": datetime.fromtimestamp(gw.clock(), UTC),
        }
    )
    return fhir.EntryResult(
        resource_type, resource_id, version, latest is None, False, "0x" + record_id.hex(), "pending"
    )
