"""Several gateways on one chain, and a gateway killed with records pending."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from eth_account import Account

from careledger.chain.devnet import dev_key
from careledger.chain.eip712 import Grant
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose, mask
from tests.backend.gateways import relayer_key_for, running_gateway
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"


def _wait(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_second_custodian_serves_its_patient_to_clinic_a(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    ledger = cluster.ledger
    relayer_b = relayer_key_for(cluster.devnet, cluster.clinic_b, 16)
    with running_gateway(
        cluster.devnet, cluster.clinic_b, relayer_b, database_url, tmp_path / "b"
    ) as gateway_b:
        patient = Account.create()  # the patient's pseudonym at clinic B
        staff_b = CareLedgerClient(dev_key(11), ledger)
        offer = staff_b.start_enrollment(gateway_b.url, patient.address, "Patient/f001")
        me = CareLedgerClient(patient.key, ledger)
        assert me.complete_enrollment(gateway_b.url, offer["typedData"])["status"] == "done"
        observation = json.loads((FIXTURES / "r4-examples" / "Observation-f001.json").read_text())
        observation["subject"] = {"reference": "Patient/f001"}
        staff_b.post_fhir(gateway_b.url, observation)

        def record() -> dict[str, object] | None:
            listed = me.call("GET", f"{gateway_b.url}/patients/{patient.address}/records")
            return next((r for r in listed if r["status"] == "anchored"), None)

        _wait(lambda: record() is not None)
        found = record()
        assert found is not None
        now = int(time.time())
        grant = Grant(
            patient.address,
            cluster.clinic.address,
            mask([Category.OBSERVATIONS]),
            mask([Purpose.TREAT]),
            now - 60,
            now + 3600,
            1,
            now + 600,
        )
        assert me.grant(gateway_b.url, grant)["status"] == "done"

        # Clinic A's staff find the custodian's endpoint in MemberRegistry: no URL given.
        clinic_a = CareLedgerClient(dev_key(10), ledger)
        read = clinic_a.read_record(bytes.fromhex(str(found["recordId"])[2:]), Purpose.TREAT)
        assert read.custodian == cluster.clinic_b.address
        assert read.resource["id"] == "f001" and read.patient == patient.address


def test_gateway_killed_with_records_pending_anchors_each_exactly_once(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    ledger = cluster.ledger
    # A long batch age keeps the accepted records pending when the process dies.
    with running_gateway(
        cluster.devnet,
        cluster.clinic,
        dev_key(15),
        database_url,
        tmp_path / "a",
        anchor_batch_max_age_s="3600",
    ) as gateway:
        patient = Account.create()
        staff = CareLedgerClient(dev_key(10), ledger)
        offer = staff.start_enrollment(gateway.url, patient.address, "Patient/example")
        me = CareLedgerClient(patient.key, ledger)
        assert me.complete_enrollment(gateway.url, offer["typedData"])["status"] == "done"
        staff.post_fhir(gateway.url, json.loads((FIXTURES / "transaction-bundle.json").read_text()))
        listed = me.call("GET", f"{gateway.url}/patients/{patient.address}/records")
        assert len(listed) == 15 and {r["status"] for r in listed} == {"pending"}

        gateway.kill()
        gateway.env["CARELEDGER_ANCHOR_BATCH_MAX_AGE_S"] = "0.05"
        gateway.restart()

        def anchored() -> bool:
            rows = me.call("GET", f"{gateway.url}/patients/{patient.address}/records")
            return {r["status"] for r in rows} == {"anchored"}

        _wait(anchored)
        ids = [bytes.fromhex(str(r["recordId"])[2:]) for r in listed]
        events = ledger.records.contract.events.RecordAnchored().get_logs(
            from_block=ledger.deployment.deployment_block, argument_filters={"patient": patient.address}
        )
        assert sorted(bytes(e["args"]["recordId"]) for e in events) == sorted(ids)  # each once, none lost
