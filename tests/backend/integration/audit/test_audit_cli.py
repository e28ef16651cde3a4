"""`careledger audit replay` and `audit accounting` as an auditor runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.backend.integration.audit.test_replay import Net, _disclose

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "careledger.cli.main", "audit"]


def _run(net: Net, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    deployment = tmp_path / "deployment.json"
    net.devnet.deployment.save(deployment)
    command = [*CLI, *args, "--rpc-url", net.devnet.anvil.url, "--deployment-file", str(deployment)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_replay_of_a_clean_history_exits_0_and_writes_reports(net: Net, tmp_path: Path) -> None:
    _disclose(net, basis=net.consent_id)
    result = _run(net, tmp_path, "replay", "--reports", str(tmp_path / "reports"))
    assert result.returncode == 0, result.stderr
    assert "No findings" in result.stdout
    html = (tmp_path / "reports" / "audit.html").read_text()
    assert 'id="findings"' in html and "<svg" in html
    assert json.loads((tmp_path / "reports" / "audit.json").read_text())["summary"]["disclosures"] == 1


def test_replay_with_a_broken_rule_exits_2_and_names_it(net: Net, tmp_path: Path) -> None:
    _disclose(net, basis=b"\x11" * 32)
    result = _run(net, tmp_path, "replay", "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert [f["code"] for f in report["findings"]] == ["disclosure-without-consent"]


def test_accounting_as_fhir_audit_events(net: Net, tmp_path: Path) -> None:
    _disclose(net, basis=net.consent_id)
    result = _run(net, tmp_path, "accounting", "--patient", net.patient.address, "--fhir")
    assert result.returncode == 0, result.stderr
    bundle = json.loads(result.stdout)
    Bundle.model_validate(bundle)
    assert len(bundle["entry"]) == 1 and bundle["entry"][0]["resource"]["resourceType"] == "AuditEvent"


def test_replay_against_no_chain_fails_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *CLI,
            "replay",
            "--rpc-url",
            "http://127.0.0.1:9",
            "--deployment-file",
            str(tmp_path / "absent.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1
