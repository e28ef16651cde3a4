"""Several gateways on one chain, and a gateway killed with records pending."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from careledger.chain.devnet import dev_key
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose
from tests.backend.gateways import (
    bundle,
    consent_grant,
    enroll,
    observation,
    records_of,
    relayer_key_for,
    running_gateway,
    wait_anchored,
    wait_until,
)
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration


def test_second_custodian_serves_its_patient_to_clinic_a(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    ledger = cluster.ledger
    relayer_b = relayer_key_for(cluster.devnet, cluster.clinic_b, 16)
    with running_gateway(
        cluster.devnet, cluster.clinic_b, relayer_b, database_url, tmp_path / "b"
    ) as gateway_b:
        patient = Account.create()  # the patient's pseudonym at clinic B
        enroll(cluster, gateway_b.url, patient, "Patient/f001", staff_key=dev_key(11))
        CareLedgerClient(dev_key(11), ledger).post_fhir(gateway_b.url, observation("Patient/f001"))

        def record() -> dict[str, object] | None:
            listed = records_of(cluster, gateway_b.url, patient)
            return next((r for r in listed if r["status"] == "anchored"), None)

        wait_until(lambda: record() is not None, timeout=30.0, what="the observation to be anchored at B")
        found = record()
        assert found is not None
        grant = consent_grant(
            patient, cluster.clinic.address, Category.OBSERVATIONS, Purpose.TREAT, lifetime=3600
        )
        me = CareLedgerClient(patient.key, ledger)
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
        enroll(cluster, gateway.url, patient)
        CareLedgerClient(dev_key(10), ledger).post_fhir(gateway.url, bundle())
        listed = records_of(cluster, gateway.url, patient)
        assert len(listed) == 15 and {r["status"] for r in listed} == {"pending"}

        gateway.kill()
        gateway.env["CARELEDGER_ANCHOR_BATCH_MAX_AGE_S"] = "0.05"
        gateway.restart()

        wait_anchored(cluster, gateway.url, patient, timeout=30.0)
        ids = [bytes.fromhex(str(r["recordId"])[2:]) for r in listed]
        events = ledger.records.contract.events.RecordAnchored().get_logs(
            from_block=ledger.deployment.deployment_block, argument_filters={"patient": patient.address}
        )
        assert sorted(bytes(e["args"]["recordId"]) for e in events) == sorted(ids)  # each once, none lost
