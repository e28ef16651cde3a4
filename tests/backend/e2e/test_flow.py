"""The whole story over real HTTP: enrollment, ingest, consent, access, revocation.

A gateway process (uvicorn) on a free port, a real anvil, and SQLite or PostgreSQL.
"""

from __future__ import annotations

import copy
import json
import time

import pytest
from eth_account import Account

from careledger import errors
from careledger.chain.clients import expand_signature
from careledger.chain.devnet import dev_key
from careledger.chain.eip712 import Revocation
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose
from tests.backend.gateways import (
    GatewayProcess,
    bundle,
    consent_grant,
    enroll,
    observation,
    records_of,
    wait_anchored,
    wait_until,
)
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration


def test_consented_read_flow(cluster: Cluster, gateway_a: GatewayProcess) -> None:
    url, ledger = gateway_a.url, cluster.ledger
    patient = Account.create()
    enroll(cluster, url, patient)
    assert ledger.records.enrollment_of(patient.address, cluster.clinic.address) is not None

    staff = CareLedgerClient(dev_key(10), ledger)
    response = staff.post_fhir(url, bundle())
    assert response["type"] == "transaction-response"
    assert len(response["entry"]) == 15
    assert all(e["response"]["status"].startswith("201") for e in response["entry"])
    # A retry stores nothing new.
    again = staff.post_fhir(url, bundle())
    assert all(e["response"]["status"].startswith("200") for e in again["entry"])
    records = wait_anchored(cluster, url, patient)
    assert len(records) == 15
    claim = next(r for r in records if r["resourceType"] == "Claim")
    lab = next(r for r in records if r["resourceType"] == "Observation")

    insurer = CareLedgerClient(cluster.insurer_signer.key, ledger)
    with pytest.raises(errors.GatewayRefused) as refused:
        insurer.read_record(bytes.fromhex(str(claim["recordId"])[2:]), Purpose.HPAYMT)
    assert refused.value.status == 403

    now = int(time.time())
    grant = consent_grant(patient, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT, now=now)
    granted = CareLedgerClient(patient.key, ledger).grant(url, grant)
    assert granted["status"] == "done", granted
    consent_id = bytes.fromhex(granted["result"]["consentId"][2:])

    read = insurer.read_record(bytes.fromhex(str(claim["recordId"])[2:]), Purpose.HPAYMT)
    assert read.resource["resourceType"] == "Claim" and read.consent_id == consent_id
    with pytest.raises(errors.GatewayRefused) as refused:
        insurer.read_record(bytes.fromhex(str(lab["recordId"])[2:]), Purpose.HPAYMT)
    assert refused.value.status == 403 and "OBSERVATIONS" in refused.value.detail

    # The disclosure reaches the chain with the insurer's own signature.
    def logged() -> bool:
        events = ledger.access.contract.events.AccessLogged().get_logs(
            from_block=ledger.deployment.deployment_block,
            argument_filters={"recordId": read.record_id},
        )
        return any(e["args"]["requester"] == insurer.address for e in events)

    wait_until(logged, what="the insurer's read to be logged on chain")
    # Anyone can recover who asked from chain data alone.
    (event,) = ledger.access.contract.events.AccessLogged().get_logs(
        from_block=ledger.deployment.deployment_block, argument_filters={"recordId": read.record_id}
    )
    signature = expand_signature(bytes(event["args"]["sigR"]), bytes(event["args"]["sigVS"]))
    assert Account._recover_hash(bytes(event["args"]["requestHash"]), signature=signature) == insurer.address

    revocation = Revocation(patient.address, consent_id, 2, now + 600)
    assert CareLedgerClient(patient.key, ledger).revoke(url, revocation)["status"] == "done"
    with pytest.raises(errors.GatewayRefused) as refused:
        insurer.read_record(bytes.fromhex(str(claim["recordId"])[2:]), Purpose.HPAYMT)
    assert refused.value.status == 403

    # The gateway's logs are JSON lines without PHI: no pseudonym, no local reference, no content.
    lines = [json.loads(line) for line in gateway_a.log.read_text().splitlines() if line.startswith("{")]
    assert any(entry.get("route") == "/records/{record_id}" for entry in lines)
    text = gateway_a.log.read_text()
    for secret in (patient.address, patient.address.lower(), "Patient/example", read.content.decode()[:40]):
        assert secret not in text


def test_changed_content_is_a_new_version_that_supersedes(
    cluster: Cluster, gateway_a: GatewayProcess
) -> None:
    patient = Account.create()
    enroll(cluster, gateway_a.url, patient, "Patient/example")
    staff = CareLedgerClient(dev_key(10), cluster.ledger)
    original = observation("Patient/example")
    staff.post_fhir(gateway_a.url, original)
    changed = copy.deepcopy(original)
    changed["valueQuantity"]["value"] = 7.1
    staff.post_fhir(gateway_a.url, changed)
    versions = [r for r in records_of(cluster, gateway_a.url, patient) if r["resourceId"] == "f001"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["supersedes"] == versions[0]["recordId"]
