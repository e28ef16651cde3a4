"""Accounting of disclosures (HIPAA 164.528): every disclosure of a pseudonym's records, at
every custodian, built from chain events alone."""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.address import is_address, to_checksum_address

from careledger import errors
from careledger.codes import Category, Purpose, Role
from careledger.services.gateway import Gateway
from careledger.services.requests import Principal


@dataclass(frozen=True)
class DisclosureEntry:
    when: int  # unix time of the block that logged it
    record_id: bytes
    custodian: str
    category: Category
    requester: str  # the key that signed the request
    member: str | None  # the member that key acts for now
    purpose: Purpose
    break_glass: bool
    consent_id: bytes | None
    tx_hash: str


def disclosures_of(gw: Gateway, principal: Principal, patient: str) -> list[DisclosureEntry]:
    """For the patient itself, or an AUDITOR member."""
    if not is_address(patient):
        raise errors.NotFound("not a pseudonym")
    patient = to_checksum_address(patient)
    if principal.keyid != patient:
        principal.require_member(Role.AUDITOR)
    records = {r.record_id: r for r in gw.ledger.records.anchored_for(patient)}
    if not records:
        return []
    times: dict[int, int] = {}
    members: dict[str, str | None] = {}
    entries = []
    for d in gw.ledger.access.entries_for(list(records)):
        if d.block_number not in times:
            times[d.block_number] = gw.ledger.block_timestamp(d.block_number)
        if d.requester not in members:
            members[d.requester] = gw.ledger.members.key_of(d.requester)[0]
        record = records[d.record_id]
        entries.append(
            DisclosureEntry(
                when=times[d.block_number],
                record_id=d.record_id,
                custodian=record.custodian,
                category=Category(record.category),
                requester=d.requester,
                member=members[d.requester],
                purpose=Purpose(d.purpose),
                break_glass=d.break_glass,
                consent_id=None if d.break_glass else d.basis,
                tx_hash=d.tx_hash,
            )
        )
    return entries
