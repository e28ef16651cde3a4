"""Faults on loopback: the gateway killed mid-batch, the chain gone for a while, the database
connection dropped, the relayer's nonce moved or its transaction dropped or replaced.

After each, nothing accepted is lost, nothing is anchored or logged twice, and the gateway
recovers by itself; while the fault lasts it answers 503 with Retry-After, never a 500.
The chain outage lasts CARELEDGER_FAULT_CHAIN_OUTAGE_S seconds (3 here; the documented run in
docs/security.md uses 30).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from careledger.chain.devnet import dev_key, start_devnet
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose
from careledger.store.migrate import upgrade
from tests.backend.databases import PG_ADMIN_URL, sqlite_url
from tests.backend.e2e.test_refusals import FHIR, LEAKS, PROBLEM, _record_url, _send
from tests.backend.gateways import (
    GatewayProcess,
    bundle,
    consent_grant,
    enroll,
    observation,
    past_head_max_age,
    records_of,
    running_gateway,
    wait_anchored,
    wait_gateway_ready,
    wait_until,
)
from tests.backend.support import Cluster, build_cluster

pytestmark = pytest.mark.integration
OUTAGE_S = float(os.environ.get("CARELEDGER_FAULT_CHAIN_OUTAGE_S", "3"))
RELAYER = dev_key(15)


# ---------------------------------------------------------------------- helpers


def _rpc(w3: Web3, method: str, *params: Any) -> Any:
    answer = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in answer, answer
    return answer.get("result")


@contextmanager
def _automine_off(w3: Web3) -> Iterator[None]:
    """Transactions wait in anvil's pool until mined by hand (or automine comes back)."""
    _rpc(w3, "evm_setAutomine", False)
    try:
        yield
    finally:
        _rpc(w3, "evm_setAutomine", True)
        _rpc(w3, "evm_mine")


def _pending_from(w3: Web3, address: str) -> list[dict[str, Any]]:
    """The transactions of `address` waiting in anvil's pool."""
    pool = _rpc(w3, "txpool_content")["pending"]
    by_sender = next((txs for sender, txs in pool.items() if sender.lower() == address.lower()), {})
    return list(by_sender.values())


def _all_in_flight(database_url: str) -> bool:
    """Every accepted record is in a sent batch and every disclosure in a sent log transaction."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url.split("?")[0])
    try:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM records WHERE status = 'pending' AND batch_id IS NULL)"
                    " + (SELECT count(*) FROM disclosures WHERE status = 'pending')"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return int(waiting) == 0


def _anchors_in_flight(cluster: Cluster) -> list[dict[str, Any]]:
    """The relayer's anchor transactions waiting in anvil's pool."""
    registry = cluster.ledger.deployment.address("RecordRegistry").lower()
    relayer = Account.from_key(RELAYER).address
    return [tx for tx in _pending_from(cluster.ledger.w3, relayer) if str(tx["to"]).lower() == registry]


def _anchor_events(cluster: Cluster, patient: str) -> list[bytes]:
    events = cluster.ledger.records.contract.events.RecordAnchored().get_logs(
        from_block=cluster.ledger.deployment.deployment_block, argument_filters={"patient": patient}
    )
    return sorted(bytes(e["args"]["recordId"]) for e in events)


def _ids(listing: list[dict[str, Any]]) -> list[bytes]:
    return sorted(bytes.fromhex(str(r["recordId"])[2:]) for r in listing)


def _assert_anchored_exactly_once(cluster: Cluster, url: str, patient: LocalAccount, count: int) -> None:
    """Every accepted record of the patient anchored, each by exactly one event on chain."""
    listing = wait_anchored(cluster, url, patient, count=count, timeout=60)
    assert _anchor_events(cluster, patient.address) == _ids(listing)


def _logged_reads(cluster: Cluster, record_id: bytes, requester: str) -> int:
    return sum(1 for e in cluster.ledger.access.entries_for([record_id]) if e.requester == requester)


def _read(cluster: Cluster, url: str, record_id: bytes) -> httpx.Response:
    return _send(cluster.insurer_signer.key, "GET", _record_url(url, record_id, "HPAYMT"))


def _patient_with_claim(cluster: Cluster, url: str) -> tuple[LocalAccount, bytes]:
    """An enrolled patient with the fixture bundle anchored and the insurer's consent to claims."""
    patient = Account.create()
    enroll(cluster, url, patient)
    CareLedgerClient(dev_key(10), cluster.ledger).post_fhir(url, bundle())
    listing = wait_anchored(cluster, url, patient, count=15, timeout=60)
    grant = consent_grant(patient, cluster.insurer.address, Category.CLAIMS, Purpose.HPAYMT, nonce=1)
    assert CareLedgerClient(patient.key, cluster.ledger).grant(url, grant)["status"] == "done"
    claim = next(r for r in listing if r["resourceType"] == "Claim")
    return patient, bytes.fromhex(str(claim["recordId"])[2:])


def _enrolled(cluster: Cluster, url: str, reference: str) -> LocalAccount:
    patient = Account.create()
    enroll(cluster, url, patient, reference)
    return patient


def _unavailable(response: httpx.Response, kind: str) -> None:
    """503 with Retry-After, in the route's shape (problem or OperationOutcome), naming `kind`."""
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0, response.headers
    for marker in LEAKS:
        assert marker not in response.text, response.text
    if response.headers["content-type"].startswith(PROBLEM):
        body = response.json()
        assert body["type"] == f"urn:careledger:problem:{kind}", body
    else:
        assert response.headers["content-type"].startswith(FHIR), response.headers
        assert response.json()["issue"][0]["code"] == "processing", response.text


# ---------------------------------------------------------------------- (a) SIGKILL mid-batch


def test_gateway_killed_mid_batch_anchors_and_logs_each_exactly_once(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    w3, relayer = cluster.ledger.w3, Account.from_key(RELAYER).address
    with running_gateway(cluster.devnet, cluster.clinic, RELAYER, database_url, tmp_path / "a") as gw:
        patient, claim = _patient_with_claim(cluster, gw.url)
        late = _enrolled(cluster, gw.url, "Patient/f001")
        with _automine_off(w3):
            # Accepted while the chain does not mine: the anchor batch goes out and stays in flight,
            # the disclosures wait behind it.
            CareLedgerClient(dev_key(10), cluster.ledger).post_fhir(gw.url, observation("Patient/f001"))
            reads = [_read(cluster, gw.url, claim) for _ in range(3)]
            assert [r.status_code for r in reads] == [200, 200, 200], [r.text for r in reads]
            wait_until(
                lambda: _all_in_flight(database_url), what="the anchor and log batches to be in flight"
            )
            assert len(_anchors_in_flight(cluster)) == 1

            gw.kill()
            # The node loses the batch too (as after its own restart): only the gateway's store has it.
            _rpc(w3, "anvil_dropAllTransactions")
            assert _pending_from(w3, relayer) == []
        gw.restart()

        _assert_anchored_exactly_once(cluster, gw.url, late, 1)
        wait_until(
            lambda: _logged_reads(cluster, claim, cluster.insurer_signer.address) >= 3,
            timeout=60,
            what="the three disclosures to be logged",
        )
        wait_gateway_ready(gw.url)
        assert _logged_reads(cluster, claim, cluster.insurer_signer.address) == 3
        _assert_anchored_exactly_once(cluster, gw.url, patient, 15)


# ---------------------------------------------------------------------- (b) chain outage


def test_chain_outage_answers_503_and_catches_up(tmp_path: Path) -> None:
    devnet = start_devnet(anvil_args=["--state", str(tmp_path / "anvil-state.json")])
    try:
        cluster = build_cluster(devnet)
        database = sqlite_url(tmp_path)
        upgrade(database)
        with running_gateway(devnet, cluster.clinic, RELAYER, database, tmp_path / "a") as gw:
            _chain_outage(cluster, gw)
    finally:
        devnet.anvil.stop()


def _chain_outage(cluster: Cluster, gw: GatewayProcess) -> None:
    w3, url = cluster.ledger.w3, gw.url
    patient, claim = _patient_with_claim(cluster, url)
    late = _enrolled(cluster, url, "Patient/f001")
    _rpc(w3, "evm_setAutomine", False)  # the restarted anvil mines automatically again
    CareLedgerClient(dev_key(10), cluster.ledger).post_fhir(url, observation("Patient/f001"))
    assert [_read(cluster, url, claim).status_code for _ in range(2)] == [200, 200]
    wait_until(lambda: _all_in_flight(gw.env["CARELEDGER_DATABASE_URL"]), what="the batches to be in flight")
    assert len(_anchors_in_flight(cluster)) == 1
    head = w3.eth.block_number
    # anvil goes down; --state dumps the chain (not its pool) and loads it on restart.
    cluster.devnet.anvil.stop()
    past_head_max_age()  # a head read just before the outage may still answer within its bound

    staff, insurer, me = dev_key(10), cluster.insurer_signer.key, patient.key
    outage_ends = time.monotonic() + OUTAGE_S
    rounds = 0
    while rounds == 0 or time.monotonic() < outage_ends:
        _unavailable(_read(cluster, url, claim), "chain-unavailable")
        _unavailable(_send(staff, "POST", f"{url}/fhir", b"{}", content_type=FHIR), "chain-unavailable")
        # a patient's own record list needs no chain (nobody's membership is looked up): served
        assert _send(me, "GET", f"{url}/patients/{patient.address}/records").status_code == 200
        _unavailable(_send(insurer, "GET", f"{url}/patients/{patient.address}/consents"), "chain-unavailable")
        ready = httpx.get(f"{url}/ready", timeout=30)
        assert ready.status_code == 503 and ready.json()["chain"] != "ok", ready.text
        rounds += 1
        time.sleep(0.5)

    cluster.devnet.anvil.start()
    assert w3.eth.block_number >= head  # the chain survived the restart
    wait_gateway_ready(url, timeout=60)
    _assert_anchored_exactly_once(cluster, url, late, 1)
    wait_until(
        lambda: _logged_reads(cluster, claim, cluster.insurer_signer.address) >= 2,
        timeout=60,
        what="the two disclosures read before the outage to be logged",
    )
    # And it serves again, under the consent granted before the outage.
    assert _read(cluster, url, claim).status_code == 200
    wait_until(
        lambda: _logged_reads(cluster, claim, cluster.insurer_signer.address) == 3,
        timeout=60,
        what="the read after the outage to be logged",
    )
    _assert_anchored_exactly_once(cluster, url, patient, 15)


# ---------------------------------------------------------------------- (c) database connection dropped


def _pg_name(database_url: str) -> str:
    return database_url.rsplit("/", 1)[1]


@contextmanager
def _postgres_refusing(name: str) -> Iterator[None]:
    """No connection to database `name` is allowed, and the open ones are terminated."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_database_connections_dropped_fail_cleanly_and_recover(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite: see test_database_locked_fails_cleanly_and_recovers")
    with running_gateway(cluster.devnet, cluster.clinic, RELAYER, database_url, tmp_path / "a") as gw:
        url, staff = gw.url, dev_key(10)
        patient, claim = _patient_with_claim(cluster, url)
        consents = f"{url}/patients/{patient.address}/consents"
        assert _send(staff, "GET", consents).status_code == 200

        with _postgres_refusing(_pg_name(database_url)):
            for _ in range(3):
                _unavailable(_send(staff, "GET", consents), "store-unavailable")
                _unavailable(_read(cluster, url, claim), "store-unavailable")
                posted = _send(staff, "POST", f"{url}/fhir", b"{}", content_type=FHIR)
                _unavailable(posted, "store-unavailable")
            ready = httpx.get(f"{url}/ready", timeout=30)
            assert ready.status_code == 503 and ready.json()["database"] != "ok", ready.text

        # Connections come back: the same process serves again, its relayer included.
        wait_until(lambda: _send(staff, "GET", consents).status_code == 200, timeout=30, what="the store")
        wait_gateway_ready(url, timeout=30)
        assert _read(cluster, url, claim).status_code == 200
        late = _enrolled(cluster, url, "Patient/f001")
        CareLedgerClient(staff, cluster.ledger).post_fhir(url, observation("Patient/f001"))
        _assert_anchored_exactly_once(cluster, url, late, 1)
        wait_until(
            lambda: _logged_reads(cluster, claim, cluster.insurer_signer.address) == 1,
            timeout=60,
            what="the read after the drop to be logged",
        )
        assert gw.process.poll() is None  # never restarted


def test_database_locked_fails_cleanly_and_recovers(cluster: Cluster, tmp_path: Path) -> None:
    import sqlite3

    database = sqlite_url(tmp_path) + "?timeout=1"
    upgrade(database)
    with running_gateway(cluster.devnet, cluster.clinic, RELAYER, database, tmp_path / "a") as gw:
        url, staff = gw.url, dev_key(10)
        patient, claim = _patient_with_claim(cluster, url)
        consents = f"{url}/patients/{patient.address}/consents"

        # Another process holds the write lock (a backup tool, a stuck migration).
        holder = sqlite3.connect(str(tmp_path / "gateway.db"), isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            for _ in range(2):
                _unavailable(_send(staff, "GET", consents), "store-unavailable")
                posted = _send(staff, "POST", f"{url}/fhir", b"{}", content_type=FHIR)
                _unavailable(posted, "store-unavailable")
        finally:
            holder.execute("ROLLBACK")
            holder.close()

        assert _send(staff, "GET", consents).status_code == 200
        late = _enrolled(cluster, url, "Patient/f001")
        CareLedgerClient(staff, cluster.ledger).post_fhir(url, observation("Patient/f001"))
        _assert_anchored_exactly_once(cluster, url, late, 1)
        assert _read(cluster, url, claim).status_code == 200
        assert gw.process.poll() is None


# ---------------------------------------------------------------------- (d) nonce gap, dropped, replaced


def _self_transfer(w3: Web3, key: bytes, nonce: int, tip_gwei: int) -> str:
    """A 0-value transaction from `key` to itself with this nonce, sent outside the gateway."""
    account = Account.from_key(key)
    base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    tip = tip_gwei * 10**9
    tx = {
        "to": account.address,
        "value": 0,
        "gas": 21_000,
        "nonce": nonce,
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": 4 * base + tip,
        "maxPriorityFeePerGas": tip,
    }
    signed = account.sign_transaction(tx)
    return "0x" + bytes(w3.eth.send_raw_transaction(signed.raw_transaction)).hex()


def test_relayer_recovers_from_nonce_gap_dropped_and_replaced_transactions(
    cluster: Cluster, tmp_path: Path
) -> None:
    # The nonce logic is the relayer's, whatever the store: SQLite only, to keep the suite short.
    database_url = sqlite_url(tmp_path)
    upgrade(database_url)
    w3, relayer = cluster.ledger.w3, Account.from_key(RELAYER).address
    staff = CareLedgerClient(dev_key(10), cluster.ledger)
    with running_gateway(cluster.devnet, cluster.clinic, RELAYER, database_url, tmp_path / "a") as gw:
        url = gw.url
        first = _enrolled(cluster, url, "Patient/f001")
        dropped = _enrolled(cluster, url, "Patient/f002")
        replaced = _enrolled(cluster, url, "Patient/f003")

        # 1. The relayer key is used outside the gateway: the gateway's next nonce is taken.
        _self_transfer(w3, RELAYER, w3.eth.get_transaction_count(relayer, "pending"), 1)
        staff.post_fhir(url, observation("Patient/f001"))
        _assert_anchored_exactly_once(cluster, url, first, 1)

        # 2. The node drops the gateway's transaction from its pool.
        with _automine_off(w3):
            staff.post_fhir(url, observation("Patient/f002"))
            wait_until(lambda: len(_anchors_in_flight(cluster)) == 1, what="the anchor batch to be in flight")
            tx_hash = _anchors_in_flight(cluster)[0]["hash"]
            _rpc(w3, "anvil_dropTransaction", tx_hash)
        _assert_anchored_exactly_once(cluster, url, dropped, 1)

        # 3. Another transaction with the same nonce and a higher tip replaces it before it is mined.
        with _automine_off(w3):
            staff.post_fhir(url, observation("Patient/f003"))
            wait_until(lambda: len(_anchors_in_flight(cluster)) == 1, what="the anchor batch to be in flight")
            stuck = _anchors_in_flight(cluster)[0]
            _self_transfer(w3, RELAYER, int(stuck["nonce"], 16), 50)
            _rpc(w3, "evm_mine")
            assert w3.eth.get_transaction_count(relayer, "latest") == int(stuck["nonce"], 16) + 1
        _assert_anchored_exactly_once(cluster, url, replaced, 1)
        assert records_of(cluster, url, replaced)[0]["status"] == "anchored"
        wait_gateway_ready(url)
