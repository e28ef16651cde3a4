"""FHIR Consent in and out: a Consent becomes grants the patient signs; chain consents export as FHIR."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from fhir.resources.R4B.bundle import Bundle

from careledger import errors
from careledger.chain.devnet import dev_key
from careledger.client import CareLedgerClient
from tests.backend.gateways import GatewayProcess, running_gateway
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"


@pytest.fixture
def gateway_a(cluster: Cluster, database_url: str, tmp_path: Path) -> Iterator[GatewayProcess]:
    with running_gateway(cluster.devnet, cluster.clinic, dev_key(15), database_url, tmp_path / "a") as gw:
        yield gw


def test_fhir_consent_becomes_signed_grants_and_exports_back(
    cluster: Cluster, gateway_a: GatewayProcess
) -> None:
    url, ledger = gateway_a.url, cluster.ledger
    patient = Account.create()
    staff = CareLedgerClient(dev_key(10), ledger)
    me = CareLedgerClient(patient.key, ledger)
    assert (
        me.complete_enrollment(
            url, staff.start_enrollment(url, patient.address, "Patient/example")["typedData"]
        )["status"]
        == "done"
    )
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
