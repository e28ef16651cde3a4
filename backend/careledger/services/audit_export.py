"""The store export for auditors: every record row of this custodian, page by page, with what
an auditor needs to recompute its commitment itself — the ciphertext, the salt and the
plaintext digest (opened from the sealed meta) — and never the plaintext.

Only an active AUDITOR member may ask. Erased rows are listed too, without key material
(there is none left). Pages follow an opaque cursor over the rows' order.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from careledger import errors
from careledger.codes import Category, Role
from careledger.crypto.envelope import OpenedMeta, open_meta
from careledger.services import keys
from careledger.services.gateway import Gateway
from careledger.services.requests import Principal
from careledger.store.db import Session
from careledger.store.models import RecordRow
from careledger.store.repositories import Batches, Patients, Records

MAX_PAGE = 500
_CURSOR_TAG = b"careledger-records\x00"


@dataclass(frozen=True)
class ExportedRecord:
    """One record row as an auditor sees it; `ciphertext`, `salt` and `plaintext_sha256` are
    None once erased (and `salt`, `plaintext_sha256` also when the sealed meta does not open)."""

    record_id: bytes
    patient: str
    resource_type: str
    resource_id: str
    version: int
    category: Category
    status: str
    commitment: bytes
    supersedes: bytes | None
    ciphertext: bytes | None
    salt: bytes | None
    plaintext_sha256: bytes | None
    created_at: datetime
    anchored_at: datetime | None
    erased_at: datetime | None
    batch_id: int | None  # the chain's batch id, once anchored


@dataclass(frozen=True)
class ExportPage:
    custodian: str
    records: list[ExportedRecord]
    next_cursor: str | None  # None on the last page
    total: int  # record rows in the store now, for progress


def export_records(gw: Gateway, principal: Principal, after: str | None, limit: int) -> ExportPage:
    """Up to `limit` record rows after the cursor `after` (from the first row without one)."""
    principal.require_member(Role.AUDITOR)
    if not 1 <= limit <= MAX_PAGE:
        raise errors.InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
    after_id = decode_cursor(after) if after else 0
    with gw.db.session() as s:
        records = Records(s)
        rows = list(records.page(after_id, limit + 1))
        total = sum(records.count_by_status().values())
        more = len(rows) > limit
        rows = rows[:limit]
        exported = [_export(gw, s, row) for row in rows]
    return ExportPage(gw.custodian, exported, encode_cursor(rows[-1].id) if more else None, total)


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(_CURSOR_TAG + row_id.to_bytes(8, "big")).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != len(_CURSOR_TAG) + 8 or not raw.startswith(_CURSOR_TAG):
        raise errors.InvalidRequest("after: not a cursor this gateway handed out")
    return int.from_bytes(raw[len(_CURSOR_TAG) :], "big")


def _export(gw: Gateway, s: Session, row: RecordRow) -> ExportedRecord:
    patient = Patients(s).by_id(row.patient_id)
    assert patient is not None
    batch = Batches(s).by_id(row.batch_id) if row.batch_id is not None else None
    meta: OpenedMeta | None = None
    if row.status != "erased" and row.sealed_meta and row.wrapped_key:
        aad = keys.aad_of(gw.custodian, patient.address, row.resource_type, row.resource_id, row.version)
        meta = _meta(gw, row.sealed_meta, row.wrapped_key, aad)
    erased = row.status == "erased"
    return ExportedRecord(
        record_id=row.record_id,
        patient=patient.address,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        version=row.version,
        category=Category(row.category),
        status=row.status,
        commitment=row.commitment,
        supersedes=row.supersedes,
        ciphertext=None if erased else row.ciphertext,
        salt=meta.salt if meta else None,
        plaintext_sha256=meta.plaintext_sha256 if meta else None,
        created_at=row.created_at,
        anchored_at=row.anchored_at,
        erased_at=row.erased_at,
        batch_id=batch.chain_batch_id if batch is not None else None,
    )


def _meta(gw: Gateway, sealed_meta: bytes, wrapped_key: bytes, aad: bytes) -> OpenedMeta | None:
    """The salt and plaintext digest, or None if they do not open (the auditor then sees a
    record it cannot check)."""
    try:
        return keys.opening(gw, lambda kek: open_meta(sealed_meta, wrapped_key, aad, kek))
    except errors.DecryptionFailed:
        return None
