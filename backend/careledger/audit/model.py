"""What an audit produces: the rebuilt history and its findings (plain data, JSON-ready)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    CRITICAL = "critical"  # a rule of the network was broken
    HIGH = "high"  # evidence is missing or does not match
    MEDIUM = "medium"  # needs a human look (e.g. break-glass to review)
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One named problem, with where it happened and what it concerns."""

    code: str  # e.g. "disclosure-without-consent"
    severity: Severity
    message: str  # one line a compliance officer can read
    block: int | None = None
    tx_hash: str | None = None
    member: str | None = None
    record_id: str | None = None
    patient: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, Severity) else v) for k, v in asdict(self).items() if v is not None
        }


@dataclass
class MemberState:
    address: str
    role: int
    name: str
    status: int  # codes.MemberStatus
    endpoint: str
    history: list[tuple[int, int]] = field(default_factory=list)  # (block, status) changes


@dataclass
class ConsentState:
    consent_id: str
    patient: str
    grantee: str
    categories: int
    purposes: int
    valid_from: int
    valid_until: int
    granted_block: int
    revoked_block: int | None = None


@dataclass
class RecordState:
    record_id: str
    patient: str
    custodian: str
    category: int
    commitment: str
    supersedes: str | None
    batch_id: int
    block: int
    tx_hash: str
    erased_block: int | None = None
    superseded_by: str | None = None


@dataclass
class DisclosureState:
    record_id: str
    requester: str
    member: str | None
    custodian: str | None
    patient: str | None
    category: int | None
    purpose: int
    break_glass: bool
    checked_block: int
    basis: str
    request_hash: str
    signature: str
    block: int
    tx_hash: str
    timestamp: int | None = None


@dataclass
class AuditReport:
    """The rebuilt state and every finding; `to_json` is the machine-readable report."""

    chain_id: int
    from_block: int
    to_block: int
    events: int
    members: dict[str, MemberState] = field(default_factory=dict)
    consents: dict[str, ConsentState] = field(default_factory=dict)
    records: dict[str, RecordState] = field(default_factory=dict)
    disclosures: list[DisclosureState] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    review_queue: list[DisclosureState] = field(default_factory=list)  # break-glass to review
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "chainId": self.chain_id,
            "fromBlock": self.from_block,
            "toBlock": self.to_block,
            "events": self.events,
            "summary": {
                "members": len(self.members),
                "consents": len(self.consents),
                "records": len(self.records),
                "disclosures": len(self.disclosures),
                "breakGlass": len(self.review_queue),
                "findings": len(self.findings),
                "bySeverity": {s.value: sum(1 for f in self.findings if f.severity is s) for s in Severity},
            },
            "findings": [f.to_json() for f in self.findings],
            "reviewQueue": [asdict(d) for d in self.review_queue],
            "members": [asdict(m) for m in self.members.values()],
            "timings": self.timings,
        }
