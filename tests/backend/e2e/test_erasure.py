"""Erasure over HTTP: crypto-shredded for good, marked on chain, refused under a legal hold;
and the patient's accounting of disclosures, built from chain events."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from careledger import errors
from careledger.chain.devnet import dev_key
from careledger.chain.eip712 import Erasure
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose
from careledger.crypto.envelope import record_aad
from careledger.crypto.keyfile import load_key_file
from careledger.services.keys import record_key
from careledger.store.db import Database
from careledger.store.repositories import Patients, Records
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


def _patient_with_claim(cluster: Cluster, url: str) -> tuple[LocalAccount, dict[str, object]]:
    patient = Account.create()
    enroll(cluster, url, patient)
    CareLedgerClient(dev_key(10), cluster.ledger).post_fhir(url, bundle())
    records = wait_anchored(cluster, url, patient)
    return patient, next(r for r in records if r["resourceType"] == "Claim")


def _erase(
    cluster: Cluster, url: str, patient: LocalAccount, record_id: bytes, nonce: int
) -> dict[str, object]:
    erasure = Erasure(patient.address, record_id, nonce, int(time.time()) + 600)
    signature = erasure.sign(patient.key, cluster.ledger.record_domain)
    body = {"nonce": nonce, "deadline": erasure.deadline, "signature": "0x" + signature.hex()}
    me = CareLedgerClient(patient.key, cluster.ledger)
    return me.call("POST", f"{url}/records/0x{record_id.hex()}/erasure", body)  # type: ignore[no-any-return]


def _db_files(database_url: str) -> list[Path]:
    path = Path(database_url.removeprefix("sqlite:///"))
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]


def test_erasure_shreds_for_good_and_is_marked_on_chain(
    cluster: Cluster, gateway_a: GatewayProcess, database_url: str
) -> None:
    url, ledger = gateway_a.url, cluster.ledger
    patient, claim = _patient_with_claim(cluster, url)
    record_id = bytes.fromhex(str(claim["recordId"])[2:])

    grant = consent_grant(patient, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT, lifetime=3600)
    CareLedgerClient(patient.key, ledger).grant(url, grant)
    insurer = CareLedgerClient(cluster.insurer_signer.key, ledger)
    insurer.read_record(record_id, Purpose.HPAYMT)

    # Control: before the erasure the key file opens what the database holds.
    db = Database(database_url)
    with db.session() as s:
        row = Records(s).by_record_id(record_id)
        assert row is not None and row.wrapped_key and row.ciphertext and row.sealed_meta
        wrapped, ciphertext, meta, version = row.wrapped_key, row.ciphertext, row.sealed_meta, row.version
        owner = Patients(s).by_id(row.patient_id)
        assert owner is not None
    aad = record_aad(
        record_key(cluster.clinic.address, owner.address, "Claim", str(claim["resourceId"])), version
    )
    kek_file = Path(gateway_a.env["CARELEDGER_KEK_FILE"])
    assert len(load_key_file(kek_file).unwrap(wrapped, aad)) == 32

    answer = _erase(cluster, url, patient, record_id, nonce=77)
    assert answer["erased"] == ["0x" + record_id.hex()]
    assert answer["disclosedTo"] == [cluster.insurer.address]
    assert answer["keysRotated"] is True
    assert answer["chain"]["status"] == "done", answer  # type: ignore[index]
    assert ledger.records.is_erased(record_id)

    with pytest.raises(errors.GatewayRefused) as gone:
        insurer.read_record(record_id, Purpose.HPAYMT)
    assert gone.value.status == 410

    # Unrecoverable even with the database and the key file together.
    with pytest.raises(errors.DecryptionFailed):
        load_key_file(kek_file).unwrap(wrapped, aad)
    with db.session() as s:
        row = Records(s).by_record_id(record_id)
        assert row is not None and row.status == "erased"
        assert row.ciphertext is None and row.wrapped_key is None and row.sealed_meta is None
    if database_url.startswith("sqlite"):
        for path in _db_files(database_url):
            blob = path.read_bytes()
            for secret in (wrapped, ciphertext, meta):
                assert blob.find(secret) == -1, f"{path.name} still holds erased bytes"
    db.dispose()

    # The patient's other records still open: rotation re-wrapped them.
    lab = next(r for r in records_of(cluster, url, patient) if r["resourceType"] == "Observation")
    own = CareLedgerClient(patient.key, ledger).read_record(
        bytes.fromhex(lab["recordId"][2:]), Purpose.PATRQT
    )
    assert own.resource["resourceType"] == "Observation"

    with pytest.raises(errors.GatewayRefused) as again:
        _erase(cluster, url, patient, record_id, nonce=78)
    assert again.value.status == 410


def test_erasure_under_retention_hold_is_refused_with_its_basis(
    cluster: Cluster, gateway_a: GatewayProcess
) -> None:
    patient, claim = _patient_with_claim(cluster, gateway_a.url)
    placed = subprocess.run(
        [
            sys.executable,
            "-m",
            "careledger.cli.main",
            "gateway",
            "hold",
            "--patient",
            patient.address,
            "--resource-type",
            "Claim",
            "--basis",
            "tax law: 10-year retention of claims",
        ],
        env=gateway_a.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert placed.returncode == 0, placed.stderr
    assert "10-year retention" in placed.stdout
    with pytest.raises(errors.GatewayRefused) as held:
        _erase(cluster, gateway_a.url, patient, bytes.fromhex(str(claim["recordId"])[2:]), nonce=5)
    assert held.value.status == 409 and "10-year retention" in held.value.detail


def test_erasure_by_someone_else_is_refused(cluster: Cluster, gateway_a: GatewayProcess) -> None:
    _, claim = _patient_with_claim(cluster, gateway_a.url)
    stranger = Account.create()
    with pytest.raises(errors.GatewayRefused) as refused:
        _erase(cluster, gateway_a.url, stranger, bytes.fromhex(str(claim["recordId"])[2:]), nonce=1)
    assert refused.value.status == 403


def test_accounting_lists_disclosures_from_the_chain(cluster: Cluster, gateway_a: GatewayProcess) -> None:
    url, ledger = gateway_a.url, cluster.ledger
    patient, claim = _patient_with_claim(cluster, url)
    record_id = bytes.fromhex(str(claim["recordId"])[2:])
    grant = consent_grant(patient, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT, 3, lifetime=3600)
    consent_id = CareLedgerClient(patient.key, ledger).grant(url, grant)["result"]["consentId"]
    CareLedgerClient(cluster.insurer_signer.key, ledger).read_record(record_id, Purpose.HPAYMT)
    me = CareLedgerClient(patient.key, ledger)

    def history() -> list[dict[str, object]]:
        return me.call("GET", f"{url}/patients/{patient.address}/disclosures")  # type: ignore[no-any-return]

    wait_until(lambda: len(history()) == 1, what="one disclosure in the patient's accounting")
    (entry,) = history()
    assert entry["recordId"] == "0x" + record_id.hex()
    assert entry["member"] == cluster.insurer.address and entry["requester"] == cluster.insurer_signer.address
    assert (entry["purpose"], entry["category"], entry["breakGlass"]) == ("HPAYMT", "CLAIMS", False)
    assert entry["consentId"] == consent_id and str(entry["txHash"]).startswith("0x")
    auditor = CareLedgerClient(dev_key(14), ledger)
    assert len(auditor.call("GET", f"{url}/patients/{patient.address}/disclosures")) == 1
    with pytest.raises(errors.GatewayRefused) as refused:
        CareLedgerClient(cluster.insurer_signer.key, ledger).call(
            "GET", f"{url}/patients/{patient.address}/disclosures"
        )
    assert refused.value.status == 403


def test_erasure_of_a_superseded_version_is_refused_naming_the_latest(
    cluster: Cluster, gateway_a: GatewayProcess
) -> None:
    url = gateway_a.url
    patient = Account.create()
    enroll(cluster, url, patient)
    staff = CareLedgerClient(dev_key(10), cluster.ledger)
    first = observation()
    staff.post_fhir(url, first)
    changed = observation()
    changed["valueQuantity"]["value"] = 7.1
    staff.post_fhir(url, changed)
    v1, v2 = sorted(wait_anchored(cluster, url, patient, count=2), key=lambda r: int(r["version"]))
    with pytest.raises(errors.GatewayRefused) as refused:
        _erase(cluster, url, patient, bytes.fromhex(str(v1["recordId"])[2:]), nonce=1)
    assert refused.value.status == 409 and str(v2["recordId"]) in refused.value.detail
    answer = _erase(cluster, url, patient, bytes.fromhex(str(v2["recordId"])[2:]), nonce=2)
    assert sorted(answer["erased"]) == sorted([v1["recordId"], v2["recordId"]])  # type: ignore[arg-type]
