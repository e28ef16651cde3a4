"""`careledger gateway rotate-kek` against a running gateway: new key, old one gone, records open."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from careledger.chain.devnet import dev_key
from careledger.client import CareLedgerClient
from careledger.codes import Purpose
from careledger.crypto.keyfile import load_key_file
from tests.backend.gateways import running_gateway
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"


def test_rotate_kek_command_rewraps_and_destroys_the_old_key(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    ledger = cluster.ledger
    with running_gateway(
        cluster.devnet, cluster.clinic, dev_key(15), database_url, tmp_path / "a"
    ) as gateway:
        patient = Account.create()
        staff, me = CareLedgerClient(dev_key(10), ledger), CareLedgerClient(patient.key, ledger)
        offer = staff.start_enrollment(gateway.url, patient.address, "Patient/example")
        assert me.complete_enrollment(gateway.url, offer["typedData"])["status"] == "done"
        staff.post_fhir(gateway.url, json.loads((FIXTURES / "transaction-bundle.json").read_text()))
        kek_file = Path(gateway.env["CARELEDGER_KEK_FILE"])
        before = load_key_file(kek_file).key_id

        result = subprocess.run(
            [sys.executable, "-m", "careledger.cli.main", "gateway", "rotate-kek"],
            env=gateway.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        after = load_key_file(kek_file)
        assert after.key_id != before and len(after.keys) == 1
        assert after.key_id in result.stdout

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            listed = me.call("GET", f"{gateway.url}/patients/{patient.address}/records")
            if {r["status"] for r in listed} == {"anchored"}:
                break
            time.sleep(0.1)
        for record in listed:
            read = me.read_record(bytes.fromhex(str(record["recordId"])[2:]), Purpose.PATRQT)
            assert read.resource["id"] == record["resourceId"]
