"""Synthetic `AuditReport`s for the report tests, built by hand (no chain)."""

from __future__ import annotations

from html.parser import HTMLParser

from careledger.audit.model import (
    AuditReport,
    ConsentState,
    DisclosureState,
    Finding,
    MemberState,
    RecordState,
    Severity,
)
from careledger.codes import Category, MemberStatus, Purpose, Role, mask

CLINIC_A = "0xA11cE00000000000000000000000000000000001"
CLINIC_B = "0xB0b0000000000000000000000000000000000002"
CLINIC_B_SIGNER = "0xB0b5161e00000000000000000000000000000022"
INSURER = "0x1115000000000000000000000000000000000003"
AUDITOR = "0xAbd1000000000000000000000000000000000004"
PATIENT_1 = "0x1111111111111111111111111111111111111111"
PATIENT_2 = "0x2222222222222222222222222222222222222222"
EVIL_NAME = '<script>alert("pwned")</script> & Sons'
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _hex32(n: int) -> str:
    return f"0x{n:064x}"


R1, R2, R3 = _hex32(0x101), _hex32(0x102), _hex32(0x103)
C1, C2 = _hex32(0xC1), _hex32(0xC2)


def _disclosure(
    record: str,
    patient: str,
    category: Category,
    requester: str,
    member: str,
    custodian: str,
    purpose: Purpose,
    block: int,
    *,
    basis: str,
    break_glass: bool = False,
) -> DisclosureState:
    return DisclosureState(
        record_id=record,
        requester=requester,
        member=member,
        custodian=custodian,
        patient=patient,
        category=int(category),
        purpose=int(purpose),
        break_glass=break_glass,
        checked_block=block - 1,
        basis=basis,
        request_hash=_hex32(block * 7),
        signature="0x" + "ab" * 65,
        block=block,
        tx_hash=_hex32(0x7000 + block),
        timestamp=T0 + block * 12,
    )


def sample_report() -> AuditReport:
    """Four members (one with a hostile name), three records, five disclosures, four findings.

    Blocks 0-399 make 40 buckets of 10: consent-based disclosures at blocks 100, 110 and 300
    (buckets 10, 11, 30), break-glass at 105 and 150 (buckets 10, 15).
    """
    members = {
        CLINIC_A: MemberState(
            CLINIC_A,
            Role.CLINIC,
            "Clinic A",
            MemberStatus.ACTIVE,
            "https://a.example.org",
            [(1, MemberStatus.ACTIVE)],
        ),
        CLINIC_B: MemberState(
            CLINIC_B,
            Role.CLINIC,
            "Clinic B",
            MemberStatus.ACTIVE,
            "https://b.example.org",
            [(1, MemberStatus.ACTIVE)],
        ),
        INSURER: MemberState(
            INSURER,
            Role.INSURER,
            EVIL_NAME,
            MemberStatus.ACTIVE,
            "",
            [(2, MemberStatus.ACTIVE), (50, MemberStatus.SUSPENDED), (80, MemberStatus.ACTIVE)],
        ),
        AUDITOR: MemberState(
            AUDITOR, Role.AUDITOR, "Audit & Co", MemberStatus.ACTIVE, "", [(3, MemberStatus.ACTIVE)]
        ),
    }
    records = {
        R1: RecordState(R1, PATIENT_1, CLINIC_A, Category.OBSERVATIONS, _hex32(1), None, 1, 20, _hex32(0x20)),
        R2: RecordState(R2, PATIENT_1, CLINIC_A, Category.MEDICATIONS, _hex32(2), None, 1, 20, _hex32(0x20)),
        R3: RecordState(R3, PATIENT_2, CLINIC_B, Category.CONDITIONS, _hex32(3), None, 2, 21, _hex32(0x21)),
    }
    consents = {
        C1: ConsentState(
            C1, PATIENT_1, INSURER, mask([Category.OBSERVATIONS]), mask([Purpose.HPAYMT]), 0, T0 * 2, 10
        ),
        C2: ConsentState(
            C2,
            PATIENT_2,
            CLINIC_A,
            mask([Category.CONDITIONS]),
            mask([Purpose.TREAT]),
            0,
            T0 * 2,
            11,
            revoked_block=120,
        ),
    }
    glass_1 = _disclosure(
        R2,
        PATIENT_1,
        Category.MEDICATIONS,
        CLINIC_B_SIGNER,
        CLINIC_B,
        CLINIC_A,
        Purpose.ETREAT,
        150,
        basis=_hex32(0xBAD1),
        break_glass=True,
    )
    glass_2 = _disclosure(
        R3,
        PATIENT_2,
        Category.CONDITIONS,
        CLINIC_A,
        CLINIC_A,
        CLINIC_B,
        Purpose.BTG,
        105,
        basis=_hex32(0xBAD2),
        break_glass=True,
    )
    disclosures = [
        _disclosure(
            R1, PATIENT_1, Category.OBSERVATIONS, INSURER, INSURER, CLINIC_A, Purpose.HPAYMT, 100, basis=C1
        ),
        _disclosure(
            R3, PATIENT_2, Category.CONDITIONS, CLINIC_A, CLINIC_A, CLINIC_B, Purpose.TREAT, 110, basis=C2
        ),
        glass_1,
        glass_2,
        _disclosure(
            R1, PATIENT_1, Category.OBSERVATIONS, INSURER, INSURER, CLINIC_A, Purpose.HPAYMT, 300, basis=C1
        ),
    ]
    findings = [
        Finding(
            "break-glass-to-review",
            Severity.MEDIUM,
            "break-glass by Clinic B",
            150,
            _hex32(0x7000 + 150),
            CLINIC_B,
            R2,
            PATIENT_1,
        ),
        Finding(
            "record-never-anchored",
            Severity.HIGH,
            "record held by Clinic A but never anchored",
            member=CLINIC_A,
        ),
        Finding(
            "disclosure-without-consent",
            Severity.CRITICAL,
            f"record disclosed to {EVIL_NAME} without consent",
            300,
            _hex32(0x7000 + 300),
            INSURER,
            R1,
            PATIENT_1,
        ),
        Finding("state-mismatch", Severity.INFO, "view functions agree after re-read", 20),
    ]
    return AuditReport(
        chain_id=31337,
        from_block=0,
        to_block=399,
        events=1234,
        members=members,
        consents=consents,
        records=records,
        disclosures=disclosures,
        findings=findings,
        review_queue=[glass_2, glass_1],
    )


def large_report(findings: int) -> AuditReport:
    """The sample report with `findings` more critical findings, one per block."""
    report = sample_report()
    report.findings.extend(
        Finding(
            "disclosure-without-consent",
            Severity.CRITICAL,
            f"synthetic finding {i}",
            1000 + i,
            _hex32(0x9000 + i),
            INSURER,
            R1,
            PATIENT_1,
        )
        for i in range(findings)
    )
    report.to_block = 1000 + findings
    return report


class _Tables(HTMLParser):
    """Collects each table's body rows as (row class, cell texts), by table id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[str, list[str]]]] = {}
        self._table: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table is not None:
            self.tables[self._table].append((attributes.get("class") or "", []))
        elif tag == "td" and self._in_body and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table is not None:
            self.tables[self._table][-1][1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(page: str, table_id: str, row_class: str | None = None) -> list[list[str]]:
    """Cell texts, whitespace collapsed, of each body row of table `table_id` (of `row_class` if given)."""
    parser = _Tables()
    parser.feed(page)
    return [cells for cls, cells in parser.tables[table_id] if row_class is None or cls == row_class]
