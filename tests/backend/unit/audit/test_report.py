"""The audit reports: HTML page, audit.json, and the accounting of disclosures (JSON, FHIR)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from careledger.audit.model import AuditReport
from careledger.audit.report import (
    MAX_ROWS,
    Timeline,
    accounting_fhir,
    accounting_json,
    render_html,
    verdict,
    write_reports,
)
from tests.backend.unit.audit.reports import (
    C1,
    CLINIC_A,
    CLINIC_B,
    CLINIC_B_SIGNER,
    EVIL_NAME,
    INSURER,
    PATIENT_1,
    PATIENT_2,
    R1,
    R2,
    large_report,
    sample_report,
    table_rows,
)

GENERATED = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def _render(report: AuditReport) -> str:
    return render_html(report, title="Audit of the test chain", generated_at=GENERATED)


# --- HTML -----------------------------------------------------------------------------------


def test_render_html_lists_findings_most_severe_first() -> None:
    rows = table_rows(_render(sample_report()), "findings", "finding")

    assert [(r[0], r[1]) for r in rows] == [
        ("critical", "disclosure-without-consent"),
        ("high", "record-never-anchored"),
        ("medium", "break-glass-to-review"),
        ("info", "state-mismatch"),
    ]
    assert rows[0][3] == "#300"
    assert "Clinic A" in rows[1][5]


def test_render_html_states_verdict_and_header() -> None:
    page = _render(sample_report())

    assert "<strong>4 findings, 1 critical</strong>" in page
    assert "Audit of the test chain" in page
    assert "2026-02-01 09:30:00 UTC" in page
    assert "#0 &ndash; #399" in page
    assert "1,234" in page


def test_verdict_without_findings_says_so() -> None:
    report = sample_report()
    report.findings.clear()

    assert verdict(report) == "No findings"
    assert 'class="verdict verdict-ok"><strong>No findings</strong>' in _render(report)


def test_render_html_escapes_every_value() -> None:
    page = _render(sample_report())

    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; Sons" in page
    assert "Audit &amp; Co" in page


def test_render_html_escapes_the_title() -> None:
    page = render_html(sample_report(), title="<b>bold</b>", generated_at=GENERATED)

    assert "<b>" not in page
    assert "<title>&lt;b&gt;bold&lt;/b&gt;</title>" in page


def test_render_html_is_self_contained() -> None:
    page = _render(sample_report())

    assert not re.search(r"<(script|link|img|iframe|object)\b|@import|url\(|\bsrc=", page, re.IGNORECASE)
    assert set(re.findall(r"https?://[^\s\"'<]+", page)) <= {
        "http://www.w3.org/2000/svg",
        "https://a.example.org",  # member endpoints are never rendered as links
        "https://b.example.org",
    }
    assert "default-src 'none'" in page


def test_render_html_member_table_counts_activity() -> None:
    rows = {r[0]: r for r in table_rows(_render(sample_report()), "members", "member")}

    clinic_a = next(r for name, r in rows.items() if name.startswith("Clinic A"))
    assert clinic_a[1:] == ["clinic", "active active #1", "2", "2", "1 (1 revoked)"]
    insurer = next(r for name, r in rows.items() if name.startswith(EVIL_NAME))
    assert insurer[2] == "active active #2 → suspended #50 → active #80"
    assert insurer[3:] == ["0", "2", "1"]


def test_render_html_review_queue_lists_break_glass() -> None:
    rows = table_rows(_render(sample_report()), "review-queue", "review")

    assert [r[5] for r in rows] == ["#105", "#150"]
    assert rows[1][2].startswith("Clinic B")
    assert rows[1][1].startswith(CLINIC_B_SIGNER[:8])


def test_timeline_counts_disclosures_per_bucket() -> None:
    timeline = Timeline.of(sample_report())

    assert (timeline.start, timeline.width, len(timeline.counts)) == (0, 10, 40)
    nonempty = {i: c for i, c in enumerate(timeline.counts) if c != (0, 0)}
    assert nonempty == {10: (1, 1), 11: (1, 0), 15: (0, 1), 30: (1, 0)}


def test_render_html_draws_one_bar_per_disclosure_kind_and_bucket() -> None:
    page = _render(sample_report())
    svg = page[page.index("<svg") : page.index("</svg>")]

    assert svg.count('<g class="bucket">') == 4
    assert svg.count('class="bar consent"') == 3
    assert svg.count('class="bar break-glass"') == 2
    assert '<title id="timeline-title">' in svg
    assert "5 disclosures, 2 of them break-glass, between blocks 0 and 399" in svg
    assert "Consent-based</text>" in svg
    assert "Break-glass</text>" in svg


def test_render_html_renders_an_empty_report() -> None:
    page = _render(AuditReport(chain_id=1, from_block=5, to_block=5, events=0))

    assert "<strong>No findings</strong>" in page
    assert table_rows(page, "findings") == [["No findings."]]
    assert table_rows(page, "review-queue") == [["Nothing to review."]]
    assert table_rows(page, "members") == [["No members."]]
    assert "No disclosures in this block range" in page
    assert 'class="bar' not in page


def test_render_html_caps_long_tables() -> None:
    report = large_report(1200)
    page = _render(report)

    assert len(table_rows(page, "findings", "finding")) == MAX_ROWS
    assert "… and 704 more findings, listed in audit.json." in page
    assert "<strong>1,204 findings, 1,201 critical</strong>" in page
    assert len(Timeline.of(report).counts) <= 40


# --- audit.json / audit.html ----------------------------------------------------------------


def test_write_reports_writes_json_and_html(tmp_path: Path) -> None:
    report = sample_report()

    paths = write_reports(report, tmp_path / "out")

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["audit.html", "audit.json"]
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(report.to_json()))
    assert 'id="findings"' in paths["html"].read_text()


# --- accounting of disclosures: JSON ------------------------------------------------------


def test_accounting_json_lists_exactly_the_patients_disclosures() -> None:
    accounting = accounting_json(sample_report(), PATIENT_1.upper().replace("0X", "0x"))

    entries = accounting["disclosures"]
    assert accounting["total"] == 3
    assert [(e["block"], e["recordId"], e["breakGlass"]) for e in entries] == [
        (100, R1, False),
        (150, R2, True),
        (300, R1, False),
    ]
    consent, glass = entries[0], entries[1]
    assert consent["recorded"] == "2026-01-01T00:20:00Z"
    assert (consent["consentId"], consent["reasonHash"]) == (C1, None)
    assert (consent["custodian"], consent["custodianName"], consent["member"]) == (
        CLINIC_A,
        "Clinic A",
        INSURER,
    )
    assert (consent["category"], consent["purpose"], consent["purposeDisplay"]) == (
        "observations",
        "HPAYMT",
        "healthcare payment",
    )
    assert glass["consentId"] is None
    assert glass["reasonHash"].endswith("bad1")
    assert (glass["requester"], glass["member"], glass["purpose"]) == (CLINIC_B_SIGNER, CLINIC_B, "ETREAT")


def test_accounting_json_of_unknown_patient_is_empty() -> None:
    assert accounting_json(sample_report(), "0x" + "99" * 20)["disclosures"] == []


# --- accounting of disclosures: FHIR ------------------------------------------------------


def _events(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle["entry"]]


def _codes(concepts: list[dict[str, Any]]) -> list[str]:
    return [coding["code"] for concept in concepts for coding in concept["coding"]]


def _agent(event: dict[str, Any], code: str) -> dict[str, Any]:
    return next(a for a in event["agent"] if a["type"]["coding"][0]["code"] == code)


def test_accounting_fhir_validates_with_r4b() -> None:
    bundle = accounting_fhir(sample_report(), PATIENT_1)

    parsed = Bundle.model_validate(bundle)

    assert parsed.type == "searchset"
    assert parsed.total == 3
    assert parsed.entry is not None
    assert all(isinstance(entry.resource, AuditEvent) for entry in parsed.entry)


def test_accounting_fhir_shapes_a_consent_disclosure_after_balp() -> None:
    event = _events(accounting_fhir(sample_report(), PATIENT_1))[0]

    assert event["type"]["code"] == "110106"
    assert [s["code"] for s in event["subtype"]] == ["disclose", "read"]
    assert (event["action"], event["outcome"], event["recorded"]) == ("R", "0", "2026-01-01T00:20:00Z")
    assert _codes(event["purposeOfEvent"]) == ["HPAYMT"]
    recipient = _agent(event, "110152")
    assert recipient["who"]["identifier"] == {"system": "urn:careledger:member", "value": INSURER}
    assert recipient["who"]["display"] == EVIL_NAME
    assert recipient["requestor"] is True
    assert recipient["policy"] == [f"urn:careledger:consent:{C1}"]
    source = _agent(event, "110153")
    assert source["who"] == event["source"]["observer"]
    assert source["who"]["identifier"]["value"] == CLINIC_A
    assert source["network"] == {"address": "https://a.example.org", "type": "5"}
    assert _agent(event, "429577009")["who"] == {"reference": f"Patient/{PATIENT_1}"}
    patient, record, tx = event["entity"]
    assert (patient["what"], patient["role"]["code"]) == ({"reference": f"Patient/{PATIENT_1}"}, "1")
    assert record["what"]["identifier"] == {"system": "urn:careledger:record", "value": R1}
    assert record["role"]["code"] == "4"
    assert {"type": "category", "valueString": "observations"} in record["detail"]
    assert {"type": "consentId", "valueString": C1} in record["detail"]
    assert tx["what"]["identifier"] == {"system": "urn:careledger:tx", "value": f"0x{0x7000 + 100:064x}"}
    assert event["source"]["site"] == "eip155:31337"


def test_accounting_fhir_marks_break_glass_with_btg() -> None:
    events = _events(accounting_fhir(sample_report(), PATIENT_1))
    glass = events[1]

    assert _codes(glass["purposeOfEvent"]) == ["ETREAT", "BTG"]
    assert {c["system"] for c in glass["purposeOfEvent"][0]["coding"]} == {ACT_REASON}
    recipient = _agent(glass, "110152")
    assert "policy" not in recipient
    assert (recipient["who"]["identifier"]["value"], recipient["altId"]) == (CLINIC_B, CLINIC_B_SIGNER)
    assert all(a["type"]["coding"][0]["code"] != "429577009" for a in glass["agent"])  # no authorizer
    assert glass["entity"][1]["detail"][1]["type"] == "breakGlassReasonHash"


def test_accounting_fhir_includes_exactly_the_patients_disclosures() -> None:
    report = sample_report()

    for patient, blocks in ((PATIENT_1, [100, 150, 300]), (PATIENT_2, [105, 110])):
        events = _events(accounting_fhir(report, patient))
        assert [int(e["entity"][2]["detail"][0]["valueString"]) for e in events] == blocks
        assert {e["entity"][0]["what"]["reference"] for e in events} == {f"Patient/{patient}"}


def test_accounting_fhir_btg_purpose_is_not_repeated() -> None:
    events = _events(accounting_fhir(sample_report(), PATIENT_2))

    assert _codes(events[0]["purposeOfEvent"]) == ["BTG"]
    Bundle.model_validate(accounting_fhir(sample_report(), PATIENT_2))


def test_accounting_fhir_uses_given_patient_reference_and_stable_ids() -> None:
    report = sample_report()

    bundle = accounting_fhir(report, PATIENT_1, patient_reference="Patient/example-7")

    Bundle.model_validate(bundle)
    assert {e["entity"][0]["what"]["reference"] for e in _events(bundle)} == {"Patient/example-7"}
    ids = [e["id"] for e in _events(bundle)]
    assert len(set(ids)) == 3
    assert ids == [e["id"] for e in _events(accounting_fhir(report, PATIENT_1))]
    assert [entry["fullUrl"] for entry in bundle["entry"]] == [f"urn:uuid:{i}" for i in ids]


def test_accounting_fhir_of_unknown_patient_is_an_empty_valid_bundle() -> None:
    bundle = accounting_fhir(sample_report(), "0x" + "99" * 20)

    assert Bundle.model_validate(bundle).total == 0


def test_accounting_fhir_refuses_a_disclosure_without_timestamp() -> None:
    report = sample_report()
    report.disclosures[0].timestamp = None

    with pytest.raises(ValueError, match="no block timestamp"):
        accounting_fhir(report, PATIENT_1)
