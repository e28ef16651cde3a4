"""Several API worker processes, one sender: records anchor exactly once, the nonce never contested."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from eth_account import Account

from careledger.chain.devnet import dev_key
from careledger.client import CareLedgerClient
from careledger.store.db import Database
from careledger.store.repositories import ChainTxs
from tests.backend.gateways import bundle, enroll, running_gateway, wait_anchored
from tests.backend.support import Cluster

pytestmark = pytest.mark.integration


def test_two_workers_share_one_sender(cluster: Cluster, database_url: str, tmp_path: Path) -> None:
    ledger = cluster.ledger
    with running_gateway(
        cluster.devnet, cluster.clinic, dev_key(15), database_url, tmp_path / "a", workers="2"
    ) as gateway:
        holders = set()
        for _ in range(20):  # requests land on both workers; exactly one holds the lease
            state = httpx.get(f"{gateway.url}/ready", timeout=5).json()
            holders.add(state["relayer"]["holdsLease"])
        patient = Account.create()
        enroll(cluster, gateway.url, patient)
        CareLedgerClient(dev_key(10), ledger).post_fhir(gateway.url, bundle())
        records = wait_anchored(cluster, gateway.url, patient, count=15)

    events = ledger.records.contract.events.RecordAnchored().get_logs(
        from_block=ledger.deployment.deployment_block, argument_filters={"patient": patient.address}
    )
    assert sorted(bytes(e["args"]["recordId"]).hex() for e in events) == sorted(
        r["recordId"][2:] for r in records
    )
    db = Database(database_url)
    with db.session() as s:
        sent = list(ChainTxs(s).unsettled(cluster.clinic_relayer.address))
    db.dispose()
    assert sent == []  # every transaction the gateway signed settled: no nonce was contested
    assert True in holders
