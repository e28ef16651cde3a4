"""Fixtures of the end-to-end tests: clinic A's gateway, a real process on the shared devnet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from careledger.chain.devnet import dev_key
from tests.backend.gateways import GatewayProcess, running_gateway
from tests.backend.support import Cluster


@pytest.fixture
def gateway_a(cluster: Cluster, database_url: str, tmp_path: Path) -> Iterator[GatewayProcess]:
    """Clinic A's gateway (relayer dev key 15) on this test's database, in `tmp_path / "a"`."""
    with running_gateway(cluster.devnet, cluster.clinic, dev_key(15), database_url, tmp_path / "a") as gw:
        yield gw
