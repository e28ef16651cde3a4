"""FHIR Consent in and out: a Consent becomes grants the patient signs; chain consents export as FHIR."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from fhir.resources.R4B.bundle import Bundle

from careledger import errors
from careledger.client import CareLedgerClient
from tests.backend.gateways import FIXTURES, GatewayProcess, enroll
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration


def test_fhir_consent_becomes_signed_grants_and_exports_back(
    cluster: Cluster, gateway_a: GatewayProcess
) -> None:
    url, ledger = gateway_a.url, cluster.ledger
    patient = Account.create()
    me = CareLedgerClient(patient.key, ledger)
    enroll(cluster, url, patient)
    consent = json.loads((FIXTURES / "consent-permit.json").read_text())
    for provision in consent["provision"]["provision"]:
        provision["period"] = {"start": "2026-01-01", "end": "2099-12-31"}
        for actor in provision["actor"]:
            actor["reference"] = {
                "type": "Organization",
                "identifier": {"system": "urn:careledger:member", "value": cluster.insurer.address},
            }
    consent["provision"]["period"] = {"start": "2026-01-01", "end": "2099-12-31"}
    body = json.dumps(consent).encode()
    answer = me.request("POST", f"{url}/fhir/Consent", body=body, content_type="application/fhir+json").json()
    grants = answer["grants"]
    assert grants and all(g["message"]["grantee"] == cluster.insurer.address for g in grants)
    for typed in grants:
        assert me.grant_typed(url, typed)["status"] == "done"

    bundle = me.call("GET", f"{url}/fhir/Consent?patient={patient.address}")
    Bundle.model_validate(bundle)
    exported = [e["resource"] for e in bundle["entry"]]
    assert len(exported) == len(grants) and {c["status"] for c in exported} == {"active"}

    # Someone else's Consent is refused: it names another patient than the signer.
    stranger = Account.create()
    with pytest.raises(errors.GatewayRefused) as refused:
        CareLedgerClient(stranger.key, ledger).call("POST", f"{url}/fhir/Consent", consent)
    assert refused.value.status == 409
