"""Store verification end to end: an AUDITOR member checks a custodian's store against the chain
through the gateway's signed export (ciphertexts, salts and plaintext digests, never plaintext),
on a real gateway process, a real anvil and both databases.

Every test runs its own freshly admitted clinic, so that the chain holds exactly the records of
that test's store (the devnet is shared by the whole session).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import delete, select, update

from careledger import errors
from careledger.audit.model import Severity
from careledger.audit.store import StoreVerification, verify_store
from careledger.chain.devnet import dev_key
from careledger.chain.eip712 import Erasure
from careledger.chain.sender import Sender
from careledger.client import CareLedgerClient
from careledger.codes import Role
from careledger.store.db import Database
from careledger.store.models import RecordRow
from tests.backend.gateways import GatewayProcess, bundle, enroll, running_gateway, wait_anchored
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration
AUDITOR_KEY = dev_key(14)  # cluster.auditor


@dataclass
class Store:
    gateway: GatewayProcess
    clinic: Sender
    clinic_key: bytes
    patient: LocalAccount
    database_url: str

    @property
    def url(self) -> str:
        return self.gateway.url

    def row(self, resource_type: str) -> RecordRow:
        db = Database(self.database_url)
        try:
            with db.session() as s:
                row = s.scalars(
                    select(RecordRow).where(RecordRow.resource_type == resource_type).order_by(RecordRow.id)
                ).first()
                assert row is not None
                return row
        finally:
            db.dispose()

    def change(self, statement: Any) -> None:
        """Run one statement directly on the gateway's database, behind the gateway's back."""
        db = Database(self.database_url)
        try:
            with db.session() as s:
                assert s.execute(statement).rowcount == 1  # type: ignore[attr-defined]
        finally:
            db.dispose()


def _fresh_clinic(cluster: Cluster) -> tuple[Sender, bytes, bytes]:
    """A CLINIC member admitted by the council now, with a funded relayer: (member, its key, relayer key)."""
    admin, relayer = Account.create(), Account.create()
    for account in (admin, relayer):
        cluster.ledger.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])  # type: ignore[arg-type]
    members = cluster.ledger.members
    pid = members.propose_admit(
        cluster.council[0], admin.address, Role.CLINIC, f"clinic {admin.address[:10]}", "http://127.0.0.1:1"
    )
    assert members.vote(cluster.council[1], pid)
    clinic = cluster.ledger.sender(admin.key)
    members.set_relayer(clinic, relayer.address)
    return clinic, bytes(admin.key), bytes(relayer.key)


@contextmanager
def _store(
    cluster: Cluster, database_url: str, directory: Path, *, anchored: bool = True, **extra: str
) -> Iterator[Store]:
    """A fresh clinic's gateway holding the fixture bundle (15 records) of one enrolled patient."""
    clinic, clinic_key, relayer_key = _fresh_clinic(cluster)
    with running_gateway(cluster.devnet, clinic, relayer_key, database_url, directory, **extra) as gateway:
        patient = Account.create()
        enroll(cluster, gateway.url, patient, staff_key=clinic_key)
        CareLedgerClient(clinic_key, cluster.ledger).post_fhir(gateway.url, bundle())
        if anchored:
            wait_anchored(cluster, gateway.url, patient, count=15)
        yield Store(gateway, clinic, clinic_key, patient, database_url)


def _verify(cluster: Cluster, store: Store, **options: Any) -> StoreVerification:
    auditor = CareLedgerClient(AUDITOR_KEY, cluster.ledger)
    try:
        return verify_store(cluster.ledger, auditor, store.clinic.address, **options)
    finally:
        auditor.close()


def _codes(result: StoreVerification) -> list[str]:
    return [f.code for f in result.findings]


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


def test_a_clean_store_yields_no_findings_and_no_plaintext_leaves(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    with _store(cluster, database_url, tmp_path / "gw") as store:
        pages: list[tuple[int, int]] = []
        result = _verify(
            cluster, store, page_size=4, progress=lambda done, total: pages.append((done, total))
        )
        assert result.findings == [], result.to_json()
        assert not result.failed
        assert result.counts["storeRecords"] == result.counts["anchoredOnChain"] == 15
        assert result.counts["verified"] == 15
        assert pages == [(4, 15), (8, 15), (12, 15), (15, 15)]
        report = json.loads(json.dumps(result.to_json()))
        assert (
            report["summary"]["bySeverity"]["critical"] == 0 and report["custodian"] == store.clinic.address
        )

        # What the gateway hands over: metadata, ciphertexts, salts and digests; none of the FHIR text.
        auditor = CareLedgerClient(AUDITOR_KEY, cluster.ledger)
        response = auditor.request("GET", f"{store.url}/audit/records?limit=500")
        assert response.status_code == 200
        page = response.json()
        assert page["custodian"] == store.clinic.address and page["total"] == 15 and "next" not in page
        first = page["records"][0]
        assert {"ciphertext", "salt", "plaintextSha256", "commitment", "batchId", "createdAt"} <= set(first)
        assert first["status"] == "anchored" and first["patient"] == store.patient.address
        prose = {t for t in _texts(bundle()) if " " in t and len(t) >= 12}
        assert len(prose) > 10
        leaked = [t for t in prose if t in response.text]
        assert not leaked, f"plaintext in the export: {leaked[:3]}"


def test_a_ciphertext_altered_in_the_database_is_store_tampered(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    with _store(cluster, database_url, tmp_path / "gw") as store:
        claim = store.row("Claim")
        assert claim.ciphertext is not None
        altered = claim.ciphertext[:-1] + bytes([claim.ciphertext[-1] ^ 1])
        store.change(update(RecordRow).where(RecordRow.id == claim.id).values(ciphertext=altered))

        result = _verify(cluster, store)
        assert _codes(result) == ["store-tampered"], result.to_json()
        (finding,) = result.findings
        assert finding.record_id == "0x" + claim.record_id.hex()
        assert finding.severity is Severity.CRITICAL and finding.patient == store.patient.address
        assert finding.block is not None and finding.tx_hash and "Claim/" in finding.message
        assert result.failed and result.counts["verified"] == 14


def test_a_record_row_deleted_from_the_database_is_store_missing(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    with _store(cluster, database_url, tmp_path / "gw") as store:
        gone = store.row("Observation")
        store.change(delete(RecordRow).where(RecordRow.id == gone.id))

        result = _verify(cluster, store)
        assert _codes(result) == ["store-missing"], result.to_json()
        (finding,) = result.findings
        assert finding.record_id == "0x" + gone.record_id.hex()
        assert finding.severity is Severity.HIGH and finding.patient == store.patient.address
        assert result.counts["storeRecords"] == 14 and result.counts["anchoredOnChain"] == 15


def test_a_record_stored_but_never_anchored_is_reported_after_the_grace_period(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    with _store(
        cluster, database_url, tmp_path / "gw", anchored=False, anchor_batch_max_age_s="3600"
    ) as store:
        within = _verify(cluster, store)  # default grace: 300 s
        assert set(_codes(within)) == {"store-pending"} and len(within.findings) == 15
        assert not within.failed and within.counts["pending"] == 15

        result = _verify(cluster, store, pending_grace_s=0)
        assert set(_codes(result)) == {"store-never-anchored"} and len(result.findings) == 15
        claim = store.row("Claim")
        named = {f.record_id for f in result.findings}
        assert "0x" + claim.record_id.hex() in named
        assert all(f.severity is Severity.HIGH for f in result.findings) and result.failed


def test_an_erased_record_yields_no_finding(cluster: Cluster, database_url: str, tmp_path: Path) -> None:
    with _store(cluster, database_url, tmp_path / "gw") as store:
        claim = store.row("Claim")
        erasure = Erasure(store.patient.address, claim.record_id, 41, int(time.time()) + 600)
        signature = erasure.sign(store.patient.key, cluster.ledger.record_domain)
        body = {"nonce": 41, "deadline": erasure.deadline, "signature": "0x" + signature.hex()}
        me = CareLedgerClient(store.patient.key, cluster.ledger)
        answer = me.call("POST", f"{store.url}/records/0x{claim.record_id.hex()}/erasure", body)
        assert answer["chain"]["status"] == "done", answer
        assert cluster.ledger.records.is_erased(claim.record_id)

        result = _verify(cluster, store)
        assert result.findings == [], result.to_json()
        assert result.counts["erased"] == 1 and result.counts["erasedOnChain"] == 1
        assert result.counts["verified"] == 14

        auditor = CareLedgerClient(AUDITOR_KEY, cluster.ledger)
        records = auditor.call("GET", f"{store.url}/audit/records")["records"]
        erased = next(r for r in records if r["recordId"] == "0x" + claim.record_id.hex())
        assert erased["status"] == "erased"
        assert not {"ciphertext", "salt", "plaintextSha256"} & set(erased)


def test_only_an_active_auditor_may_export_the_store(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    with _store(cluster, database_url, tmp_path / "gw", anchored=False) as store:
        url = f"{store.url}/audit/records"
        for key in (store.clinic_key, cluster.insurer_signer.key, store.patient.key, Account.create().key):
            response = CareLedgerClient(key, cluster.ledger).request("GET", url)
            assert response.status_code == 403, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
        assert CareLedgerClient(AUDITOR_KEY, cluster.ledger).request("GET", url).status_code == 200

        auditor = CareLedgerClient(AUDITOR_KEY, cluster.ledger)
        assert auditor.request("GET", f"{url}?limit=501").status_code == 422
        assert auditor.request("GET", f"{url}?after=not-a-cursor").status_code == 422
        page = auditor.call("GET", f"{url}?limit=10")
        rest = auditor.call("GET", f"{url}?limit=10&after={page['next']}")
        assert len(page["records"]) == 10 and len(rest["records"]) == 5 and "next" not in rest
        assert not {r["recordId"] for r in page["records"]} & {r["recordId"] for r in rest["records"]}

        with pytest.raises(errors.GatewayRefused) as refused:
            verify_store(
                cluster.ledger, CareLedgerClient(store.clinic_key, cluster.ledger), store.clinic.address
            )
        assert refused.value.status == 403 and "AUDITOR" in refused.value.detail


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_verify_store_command(cluster: Cluster, database_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "auditor.key"
    key_file.write_text(AUDITOR_KEY.hex())
    with _store(cluster, database_url, tmp_path / "gw") as store:
        claim = store.row("Claim")
        assert claim.ciphertext is not None
        store.change(
            update(RecordRow)
            .where(RecordRow.id == claim.id)
            .values(ciphertext=b"\x00" + claim.ciphertext[1:])
        )
        env = store.gateway.env | {"COLUMNS": "200"}  # RPC URL and deployment file come from the settings
        command = [
            sys.executable,
            "-m",
            "careledger.cli.audit",
            "verify-store",
            "--custodian",
            store.clinic.address,
            "--key-file",
            str(key_file),
        ]

        shown = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert shown.returncode == 2, shown.stdout + shown.stderr
        assert "store-tampered" in shown.stdout and "0x" + claim.record_id.hex() in shown.stdout
        assert "FAILED" in shown.stdout and "Traceback" not in shown.stderr

        out = tmp_path / "report.json"
        as_json = subprocess.run(
            [*command, "--json", "--out", str(out)], env=env, capture_output=True, text=True, timeout=120
        )
        assert as_json.returncode == 2, as_json.stderr
        report = json.loads(as_json.stdout)
        assert report == json.loads(out.read_text())
        assert [f["code"] for f in report["findings"]] == ["store-tampered"]
        assert report["findings"][0]["record_id"] == "0x" + claim.record_id.hex()
        assert report["summary"]["verified"] == 14 and report["summary"]["bySeverity"]["critical"] == 1

        not_auditor = tmp_path / "clinic.key"
        not_auditor.write_text(store.clinic_key.hex())
        refused = subprocess.run(
            [*command[:-1], str(not_auditor)], env=env, capture_output=True, text=True, timeout=120
        )
        assert refused.returncode == 1 and "403" in refused.stderr and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
