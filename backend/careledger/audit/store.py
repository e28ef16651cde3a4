"""Store verification: a custodian's store checked against the commitments anchored on chain.

The auditor signs its requests to the custodian's gateway (`GET /audit/records`), which hands
over every record row with its ciphertext, salt and plaintext digest — never the plaintext —
and recomputes each commitment itself, keccak256(salt ‖ plaintextSha256 ‖ sha256(ciphertext)),
to compare with the RecordAnchored events of that custodian. Each problem is a named finding:

- `store-tampered`: a row does not hash to the commitment anchored for its record id, or the
  gateway claims another commitment (patient, category, supersedes) than the chain holds;
- `store-missing`: anchored on chain, not erased there, and absent from the store;
- `store-never-anchored`: in the store, not on chain, older than the grace period (younger
  ones are `store-pending`, for information);
- `store-erased-but-present`: erased on chain, yet the store still hands over a ciphertext;
- `store-erased-not-marked`: erased in the store but not on chain, so no erasure signed by
  the patient stands behind it.

The chain is read before the store; rows whose verdict depends on chain state that may have
moved on meanwhile (not anchored yet, not erased yet) are judged again against a second read.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from eth_utils.address import is_address, to_checksum_address

from careledger import errors
from careledger.audit.model import Finding, Severity
from careledger.chain.clients import AnchoredEvent, ErasedEvent, Ledger
from careledger.client import CareLedgerClient
from careledger.codes import Category, Role
from careledger.crypto.commitments import commitment_from_digests, sha256

TAMPERED = "store-tampered"
MISSING = "store-missing"
NEVER_ANCHORED = "store-never-anchored"
PENDING = "store-pending"
ERASED_BUT_PRESENT = "store-erased-but-present"
ERASED_NOT_MARKED = "store-erased-not-marked"

SEVERITY = {
    TAMPERED: Severity.CRITICAL,
    ERASED_BUT_PRESENT: Severity.CRITICAL,
    MISSING: Severity.HIGH,
    NEVER_ANCHORED: Severity.HIGH,
    ERASED_NOT_MARKED: Severity.HIGH,
    PENDING: Severity.INFO,
}
FAILING = (Severity.CRITICAL, Severity.HIGH)
_RANK = {s: i for i, s in enumerate(Severity)}
MAX_PAGE = 500

# (rows read so far, rows in the store) after each page
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class StoredRecord:
    """What the auditor keeps of one exported row: the ciphertext only as the commitment it
    recomputes to (None when the gateway handed over no ciphertext, salt or digest)."""

    record_id: bytes
    patient: str
    label: str  # ResourceType/id/_history/version
    category: int
    status: str
    commitment: bytes  # as the gateway claims it
    supersedes: bytes
    recomputed: bytes | None
    has_ciphertext: bool
    created_at: float  # unix seconds


@dataclass(frozen=True)
class ChainView:
    """One read of the chain: the custodian's anchored and erased records by id."""

    block: int
    anchored: dict[bytes, AnchoredEvent]
    erased: dict[bytes, ErasedEvent]

    @classmethod
    def read(cls, ledger: Ledger, custodian: str) -> ChainView:
        block = ledger.block_number()
        anchored = {e.record.record_id: e for e in ledger.records.anchored_by(custodian)}
        erased = {e.record_id: e for e in ledger.records.erased_by(custodian)}
        # A patient signs the erasure of a record's latest version; the mark covers the
        # versions it supersedes, which the custodian shreds with it.
        for mark in list(erased.values()):
            older = anchored.get(mark.record_id)
            while older is not None and any(older.record.supersedes):
                erased.setdefault(older.record.supersedes, mark)
                older = anchored.get(older.record.supersedes)
        return cls(block, anchored, erased)


@dataclass
class StoreVerification:
    """The outcome of one store verification: findings, counts and timings (JSON-ready)."""

    custodian: str
    endpoint: str
    chain_id: int
    block: int  # the chain head when the verification began
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether any finding is CRITICAL or HIGH."""
        return any(f.severity in FAILING for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "custodian": self.custodian,
            "endpoint": self.endpoint,
            "chainId": self.chain_id,
            "block": self.block,
            "summary": {
                **self.counts,
                "findings": len(self.findings),
                "bySeverity": {s.value: sum(1 for f in self.findings if f.severity is s) for s in Severity},
            },
            "findings": [f.to_json() for f in self.findings],
            "timings": self.timings,
        }


def verify_store(
    ledger: Ledger,
    client: CareLedgerClient,
    custodian: str,
    *,
    base_url: str | None = None,
    pending_grace_s: float = 300,
    now: Callable[[], float] = time.time,
    page_size: int = MAX_PAGE,
    progress: Progress | None = None,
) -> StoreVerification:
    """Page through `custodian`'s store as the auditor `client` signs, and check every row
    against the chain. `base_url` overrides the endpoint the custodian registered on chain."""
    started = time.perf_counter()
    if not is_address(custodian):
        raise errors.InvalidRequest(f"{custodian!r} is not an address")
    custodian = to_checksum_address(custodian)
    if not 1 <= page_size <= MAX_PAGE:
        raise errors.InvalidRequest(f"page size must be between 1 and {MAX_PAGE}")
    endpoint = base_url or _registered_endpoint(ledger, custodian)
    timings: dict[str, float] = {}

    mark = time.perf_counter()
    first = ChainView.read(ledger, custodian)
    timings["chainS"] = time.perf_counter() - mark

    mark = time.perf_counter()
    stored = _read_store(client, endpoint.rstrip("/"), custodian, page_size, progress)
    timings["storeS"] = time.perf_counter() - mark

    result = StoreVerification(custodian, endpoint, ledger.deployment.chain_id, first.block)
    judge = _Judge(custodian, now(), pending_grace_s)
    deferred = []
    for row in stored.values():
        if judge.settled(row, first):
            judge.judge(row, first)
        else:
            deferred.append(row)
    latest = first
    if deferred:  # their verdict depends on chain state that may have moved on since the first read
        mark = time.perf_counter()
        latest = ChainView.read(ledger, custodian)
        timings["chainRecheckS"] = time.perf_counter() - mark
        for row in deferred:
            judge.judge(row, latest)
    for record_id, event in first.anchored.items():
        if record_id not in stored and record_id not in latest.erased:
            judge.missing(event)

    result.findings = sorted(judge.findings, key=lambda f: _RANK[f.severity])
    result.counts = {
        "storeRecords": len(stored),
        "anchoredOnChain": len(first.anchored),
        "erasedOnChain": len(latest.erased),
        **judge.counts,
    }
    timings["totalS"] = time.perf_counter() - started
    result.timings = {k: round(v, 4) for k, v in timings.items()}
    return result


def _registered_endpoint(ledger: Ledger, custodian: str) -> str:
    member = ledger.members.get_member(custodian)
    if member.role is not Role.CLINIC:
        raise errors.InvalidRequest(f"{custodian} is not a CLINIC member: it keeps no store")
    if not member.endpoint:
        raise errors.ConfigurationError(f"{custodian} registers no endpoint on chain; give the gateway's URL")
    return member.endpoint


def _read_store(
    client: CareLedgerClient, base: str, custodian: str, page_size: int, progress: Progress | None
) -> dict[bytes, StoredRecord]:
    """Every row of the store, page by page, the ciphertexts hashed as they come."""
    stored: dict[bytes, StoredRecord] = {}
    cursor: str | None = None
    cursors: set[str] = set()
    while True:
        query = f"limit={page_size}" + (f"&after={quote(cursor, safe='')}" if cursor else "")
        page = client.call("GET", f"{base}/audit/records?{query}")
        try:
            if to_checksum_address(page["custodian"]) != custodian:
                raise errors.VerificationFailed(
                    f"the gateway at {base} keeps the store of {page['custodian']}, not of {custodian}"
                )
            for raw in page["records"]:
                row = _stored(raw)
                stored.setdefault(row.record_id, row)
            total, cursor = int(page["total"]), page.get("next")
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.VerificationFailed(f"the gateway's export is malformed: {exc!r}") from None
        if progress is not None:
            progress(len(stored), max(total, len(stored)))
        if not cursor:
            return stored
        if cursor in cursors:
            raise errors.VerificationFailed("the gateway's export goes round in circles (a cursor repeats)")
        cursors.add(cursor)


def _stored(raw: dict[str, Any]) -> StoredRecord:
    return StoredRecord(
        record_id=_hex(raw["recordId"]),
        patient=to_checksum_address(raw["patient"]),
        label=f"{raw['resourceType']}/{raw['resourceId']}/_history/{raw['version']}",
        category=int(Category[raw["category"]]),
        status=str(raw["status"]),
        commitment=_hex(raw["commitment"]),
        supersedes=_hex(raw["supersedes"]) if raw.get("supersedes") else bytes(32),
        recomputed=_recompute(raw),
        has_ciphertext=raw.get("ciphertext") is not None,
        created_at=_timestamp(raw["createdAt"]),
    )


def _recompute(raw: dict[str, Any]) -> bytes | None:
    """keccak256(salt ‖ plaintextSha256 ‖ sha256(ciphertext)), from what the gateway handed over."""
    if not (raw.get("ciphertext") and raw.get("salt") and raw.get("plaintextSha256")):
        return None
    try:
        ciphertext = base64.b64decode(raw["ciphertext"], validate=True)
        return commitment_from_digests(_hex(raw["salt"]), _hex(raw["plaintextSha256"]), sha256(ciphertext))
    except (binascii.Error, ValueError):
        return None


def _hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def _timestamp(value: str) -> float:
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class _Judge:
    """Turns rows and chain views into findings and counts."""

    def __init__(self, custodian: str, now: float, grace_s: float) -> None:
        self.custodian = custodian
        self.now = now
        self.grace_s = grace_s
        self.findings: list[Finding] = []
        self.counts = {"verified": 0, "erased": 0, "pending": 0}

    @staticmethod
    def settled(row: StoredRecord, view: ChainView) -> bool:
        """False when the verdict could change with a later read of the chain."""
        if row.record_id in view.erased:
            return True
        if row.record_id not in view.anchored:
            return False  # not anchored (yet?)
        return row.status != "erased"  # erased here, not (yet?) marked on chain

    def judge(self, row: StoredRecord, view: ChainView) -> None:
        erased = view.erased.get(row.record_id)
        anchored = view.anchored.get(row.record_id)
        if erased is not None:
            if row.has_ciphertext:
                self._find(
                    ERASED_BUT_PRESENT,
                    f"{row.label} was erased on chain at its patient's request, "
                    "yet the store still hands over its ciphertext",
                    row,
                    erased.block_number,
                    erased.tx_hash,
                )
            else:
                self.counts["erased"] += 1
        elif row.status == "erased":
            if anchored is not None:
                self._find(
                    ERASED_NOT_MARKED,
                    f"{row.label} is erased in the store but not on chain: "
                    "no erasure signed by its patient stands behind it",
                    row,
                    anchored.block_number,
                    anchored.tx_hash,
                )
            else:
                self.counts["erased"] += 1  # erased before it was ever anchored
        elif anchored is None:
            age = self.now - row.created_at
            if age > self.grace_s:
                self._find(
                    NEVER_ANCHORED,
                    f"{row.label} (store status {row.status}) was stored {age:.0f} s ago "
                    "and is not anchored on chain",
                    row,
                )
            else:
                self.counts["pending"] += 1
                self._find(
                    PENDING,
                    f"{row.label} was stored {max(age, 0):.0f} s ago and is not anchored yet "
                    f"(within the {self.grace_s:g} s grace period)",
                    row,
                )
        else:
            self._compare(row, anchored)

    def _compare(self, row: StoredRecord, event: AnchoredEvent) -> None:
        chain = event.record
        reasons = []
        if row.recomputed is None:
            reasons.append("the store hands over no ciphertext, salt or plaintext digest to check")
        elif row.recomputed != chain.commitment:
            reasons.append("its ciphertext, salt and plaintext digest do not hash to the anchored commitment")
        if row.commitment != chain.commitment:
            reasons.append("the gateway claims another commitment than the chain holds")
        if row.patient != chain.patient:
            reasons.append(f"the gateway names patient {row.patient}, the chain {chain.patient}")
        if row.category != chain.category:
            reasons.append(
                f"the gateway names category {Category(row.category).name}, "
                f"the chain {Category(chain.category).name}"
            )
        if row.supersedes != chain.supersedes:
            reasons.append("the gateway names another superseded version than the chain")
        if reasons:
            self._find(
                TAMPERED,
                f"{row.label} does not match what was anchored: {'; '.join(reasons)}",
                row,
                event.block_number,
                event.tx_hash,
            )
        else:
            self.counts["verified"] += 1

    def missing(self, event: AnchoredEvent) -> None:
        record = event.record
        self.findings.append(
            Finding(
                MISSING,
                SEVERITY[MISSING],
                f"record 0x{record.record_id.hex()} anchored in block {event.block_number} "
                "is not in the store, and was not erased on chain",
                block=event.block_number,
                tx_hash=event.tx_hash,
                member=self.custodian,
                record_id="0x" + record.record_id.hex(),
                patient=record.patient,
            )
        )

    def _find(
        self, code: str, message: str, row: StoredRecord, block: int | None = None, tx: str | None = None
    ) -> None:
        self.findings.append(
            Finding(
                code,
                SEVERITY[code],
                message,
                block=block,
                tx_hash=tx,
                member=self.custodian,
                record_id="0x" + row.record_id.hex(),
                patient=row.patient,
            )
        )
