"""Access: a member's signed read, allowed only under a consent on chain (or break-glass),
answered with what the reader needs to check the record against its commitment, and
logged on chain as a disclosure carrying the reader's own signature."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_utils.crypto import keccak

from careledger import errors
from careledger.codes import Category, Purpose, Role
from careledger.crypto.envelope import SealedRecord, open_record
from careledger.services import keys
from careledger.services.gateway import Gateway
from careledger.services.requests import Principal, nonce_of
from careledger.store.models import DisclosureRow
from careledger.store.repositories import Disclosures, ReadableRecord, readable_record, readable_record_async

REASON_HEADER = "careledger-break-glass-reason"
ACTOR_HEADER = "careledger-acting-user"
BREAK_GLASS_PURPOSES = (Purpose.ETREAT, Purpose.BTG)
BREAK_GLASS_WINDOW = timedelta(hours=1)  # break_glass_per_hour counts in this sliding window


@dataclass(frozen=True)
class Disclosed:
    """A record as handed to its reader: the exact committed bytes and the proof material."""

    content: bytes
    record_id: bytes
    patient: str
    resource_type: str
    resource_id: str
    version: int
    category: Category
    commitment: bytes
    salt: bytes
    ciphertext_sha256: bytes
    consent_id: bytes | None
    checked_block: int | None
    break_glass: bool


def read_record(gw: Gateway, principal: Principal, record_id: bytes, purpose: Purpose) -> Disclosed:
    """Decide, decrypt, and queue the disclosure for the access log (committed on return).
    The request's nonce must be spent already (requests.spend_nonce)."""
    with gw.db.connection() as conn:
        row = readable_record(conn, record_id)
    disclosed, disclosure = _decide(gw, principal, row, purpose)
    if disclosure is not None:
        gw.commits.queue_disclosure(disclosure).result()
    return disclosed


async def read_record_async(
    gw: Gateway, principal: Principal, record_id: bytes, purpose: Purpose
) -> Disclosed:
    """read_record for an event loop, for a request whose nonce is not spent yet (identify):
    a disclosure is committed together with the nonce, so a replay is refused (NonceReused)
    before anything is disclosed; a refusal, or a read that logs nothing, leaves the nonce to
    the API's signature wrapper, which spends it before anything is answered. Break-glass,
    which counts and records under a lock shared by the gateway's processes, spends the nonce
    first and runs in a thread."""
    if purpose in BREAK_GLASS_PURPOSES and REASON_HEADER in principal.request.headers:
        await asyncio.wrap_future(gw.commits.spend_nonce(nonce_of(principal)))
        return await asyncio.to_thread(read_record, gw, principal, record_id, purpose)
    row = await readable_record_async(gw.db, record_id)
    disclosed, disclosure = _decide(gw, principal, row, purpose)
    if disclosure is not None:
        await asyncio.wrap_future(gw.commits.queue_disclosure(disclosure, nonce=nonce_of(principal)))
    return disclosed


def _decide(
    gw: Gateway, principal: Principal, row: ReadableRecord | None, purpose: Purpose
) -> tuple[Disclosed, dict[str, Any] | None]:
    """The record for this reader, and the disclosure to queue (None: nothing to log, or
    logged already, as break-glass is)."""
    if row is None:
        raise errors.NotFound("no such record at this custodian")
    if row.status == "erased":
        raise errors.Gone("this record was erased at its patient's request")
    if principal.keyid == row.patient:  # patients always read their own records
        return _open(gw, row, None, None, break_glass=False), None
    if row.status != "anchored":
        raise errors.Conflict("this record is not anchored yet; retry in a moment")
    member = principal.require_member()
    if len(principal.request.signature) != 65:
        # The access log carries the reader's 65-byte signature; contract keys sign otherwise.
        raise errors.Forbidden(
            "reading records needs an EOA signing key (a 65-byte signature) to log on chain"
        )
    headers = principal.request.headers
    if purpose in BREAK_GLASS_PURPOSES and REASON_HEADER in headers:
        return _break_glass(gw, principal, member, row, purpose, headers), None
    if purpose is Purpose.BTG:
        raise errors.Forbidden(f"break-glass needs the signed headers {REASON_HEADER} and {ACTOR_HEADER}")
    head = gw.ledger.head()
    consent_id = gw.ledger.consents.permitted(row.patient, member, row.category, purpose, head)
    block = head.number
    if consent_id is None:
        raise errors.Forbidden(
            f"no consent of the patient lets {member} see {Category(row.category).name} for {purpose.name}"
        )
    disclosed = _open(gw, row, consent_id, block, break_glass=False)
    # queued: the relayer logs it on chain with the reader's signature
    return disclosed, _disclosure(gw, principal, member, row, purpose, block, consent_id, None, None)


def _break_glass(
    gw: Gateway,
    principal: Principal,
    member: str,
    row: ReadableRecord,
    purpose: Purpose,
    headers: dict[str, str],
) -> Disclosed:
    principal.require_member(Role.CLINIC)
    reason, actor = headers.get(REASON_HEADER, "").strip(), headers.get(ACTOR_HEADER, "").strip()
    if not reason or not actor:
        raise errors.Forbidden(
            f"break-glass needs a reason ({REASON_HEADER}) and the acting user ({ACTOR_HEADER})"
        )
    block = gw.ledger.block_number()
    now = datetime.fromtimestamp(gw.clock(), UTC)
    with gw.db.session() as s:
        # Count and record as one step for every process of this gateway: a flood of
        # concurrent break-glass reads must not all pass the count before any is recorded.
        gw.db.lock(s, f"break-glass:{member}")
        disclosures = Disclosures(s)
        used, oldest = disclosures.break_glass_since(member, now - BREAK_GLASS_WINDOW)
        if used >= gw.settings.break_glass_per_hour:
            retry = (oldest + BREAK_GLASS_WINDOW - now).total_seconds() if oldest else None
            raise errors.RateLimited(
                f"break-glass limit reached: {used} in the last hour for {member}", retry_after_s=retry
            )
        disclosures.add(
            DisclosureRow(**_disclosure(gw, principal, member, row, purpose, block, None, reason, actor))
        )
        # opened inside the step: if it fails, the disclosure is not recorded either
        return _open(gw, row, None, block, break_glass=True)


def _open(
    gw: Gateway,
    row: ReadableRecord,
    consent_id: bytes | None,
    block: int | None,
    *,
    break_glass: bool,
) -> Disclosed:
    assert row.ciphertext and row.sealed_meta and row.wrapped_key and row.kek_id and row.ciphertext_sha256
    aad = keys.aad_of(gw.custodian, row.patient, row.resource_type, row.resource_id, row.version)
    sealed = SealedRecord(row.ciphertext, row.sealed_meta, row.wrapped_key, row.kek_id)
    content, meta = keys.opening(gw, lambda kek: open_record(sealed, aad, kek))
    return Disclosed(
        content=content,
        record_id=row.record_id,
        patient=row.patient,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        version=row.version,
        category=Category(row.category),
        commitment=row.commitment,
        salt=meta.salt,
        ciphertext_sha256=row.ciphertext_sha256,
        consent_id=consent_id,
        checked_block=block,
        break_glass=break_glass,
    )


def _disclosure(
    gw: Gateway,
    principal: Principal,
    member: str,
    row: ReadableRecord,
    purpose: Purpose,
    block: int,
    consent_id: bytes | None,
    reason: str | None,
    actor: str | None,
) -> dict[str, Any]:
    """A disclosure row's values."""
    basis = consent_id if consent_id is not None else bytes(keccak(text=reason or ""))
    return {
        "record_id": row.record_id,
        "requester": principal.keyid,
        "member": member,
        "purpose": int(purpose),
        "break_glass": consent_id is None,
        "checked_block": block,
        "basis": basis,
        "request_hash": principal.request.message_hash,
        "signature": principal.request.signature,
        "signature_base": principal.request.signature_base,
        "acting_user": actor,
        "reason": reason,
        "status": "pending",
        "reviewed": False,
        "created_at": datetime.fromtimestamp(gw.clock(), UTC),
    }
