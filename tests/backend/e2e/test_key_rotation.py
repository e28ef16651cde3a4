"""`careledger gateway rotate-kek` against a running gateway: new key, old one gone, records open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from careledger.chain.devnet import dev_key
from careledger.client import CareLedgerClient
from careledger.codes import Purpose
from careledger.crypto.keyfile import load_key_file
from tests.backend.gateways import GatewayProcess, bundle, enroll, wait_anchored
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration


def test_rotate_kek_command_rewraps_and_destroys_the_old_key(
    cluster: Cluster, gateway_a: GatewayProcess
) -> None:
    ledger = cluster.ledger
    patient = Account.create()
    me = CareLedgerClient(patient.key, ledger)
    enroll(cluster, gateway_a.url, patient)
    CareLedgerClient(dev_key(10), ledger).post_fhir(gateway_a.url, bundle())
    kek_file = Path(gateway_a.env["CARELEDGER_KEK_FILE"])
    before = load_key_file(kek_file).key_id

    result = subprocess.run(
        [sys.executable, "-m", "careledger.cli.main", "gateway", "rotate-kek"],
        env=gateway_a.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    after = load_key_file(kek_file)
    assert after.key_id != before and len(after.keys) == 1
    assert after.key_id in result.stdout

    listed = wait_anchored(cluster, gateway_a.url, patient)
    for record in listed:
        read = me.read_record(bytes.fromhex(str(record["recordId"])[2:]), Purpose.PATRQT)
        assert read.resource["id"] == record["resourceId"]
