"""Legal retention holds (GDPR art. 17(3)): a custodian's basis for refusing an erasure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from eth_utils.address import is_address, to_checksum_address

from careledger import errors
from careledger.services.gateway import Gateway
from careledger.store.models import RetentionHoldRow
from careledger.store.repositories import Patients, RetentionHolds


@dataclass(frozen=True)
class Hold:
    hold_id: int
    patient: str
    resource_type: str | None  # None: every record of the patient
    basis: str


def add_hold(gw: Gateway, patient: str, basis: str, resource_type: str | None = None) -> Hold:
    if not is_address(patient):
        raise errors.InvalidRequest("patient must be the pseudonym (an Ethereum address) enrolled here")
    if not basis.strip():
        raise errors.InvalidRequest("a hold needs its legal basis")
    with gw.db.session() as s:
        row = Patients(s).by_address(to_checksum_address(patient))
        if row is None:
            raise errors.NotFound("no such patient here")
        hold = RetentionHolds(s).add(
            RetentionHoldRow(
                patient_id=row.id,
                resource_type=resource_type,
                basis=basis.strip(),
                created_at=datetime.fromtimestamp(gw.clock(), UTC),
            )
        )
        return Hold(hold.id, row.address, hold.resource_type, hold.basis)


def holds_of(gw: Gateway, patient: str) -> list[Hold]:
    with gw.db.session() as s:
        row = Patients(s).by_address(to_checksum_address(patient)) if is_address(patient) else None
        if row is None:
            raise errors.NotFound("no such patient here")
        return [
            Hold(h.id, row.address, h.resource_type, h.basis) for h in RetentionHolds(s).for_patient(row.id)
        ]
