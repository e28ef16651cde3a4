"""Record metadata: what a patient, this custodian's staff or an auditor may list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from eth_utils.address import is_address, to_checksum_address

from careledger import errors
from careledger.codes import Category, Role
from careledger.services.gateway import Gateway
from careledger.services.requests import Principal
from careledger.store.repositories import Patients, Records


@dataclass(frozen=True)
class RecordMeta:
    record_id: bytes
    resource_type: str
    resource_id: str
    version: int
    category: Category
    status: str
    commitment: bytes
    supersedes: bytes | None
    anchored_at: datetime | None


def list_records(gw: Gateway, principal: Principal, patient: str) -> list[RecordMeta]:
    if not is_address(patient):
        raise errors.NotFound("no such patient here")
    patient = to_checksum_address(patient)
    if principal.keyid != patient:
        member = principal.require_member(Role.CLINIC, Role.AUDITOR)
        if principal.role is Role.CLINIC and member != gw.custodian:
            raise errors.Forbidden("another custodian's staff cannot list this custodian's records")
    with gw.db.session() as s:
        row = Patients(s).by_address(patient)
        if row is None:
            raise errors.NotFound("no such patient here")
        return [
            RecordMeta(
                r.record_id,
                r.resource_type,
                r.resource_id,
                r.version,
                Category(r.category),
                r.status,
                r.commitment,
                r.supersedes,
                r.anchored_at,
            )
            for r in Records(s).of_patient(row.id)
        ]
