"""Shared fixtures: a real anvil with the contracts deployed, and admitted members."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from careledger.chain.devnet import Devnet, start_devnet
from tests.backend.support import Cluster, build_cluster


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    net = start_devnet()
    try:
        yield net
    finally:
        net.anvil.stop()


@pytest.fixture(scope="session")
def cluster(devnet: Devnet) -> Cluster:
    return build_cluster(devnet)


@pytest.fixture
def patient() -> LocalAccount:
    """A fresh pseudonymous patient key (no ether needed: gateways relay)."""
    return Account.create()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty, migrated database of each kind: the integration suite runs on both."""
    from careledger.store.migrate import upgrade
    from tests.backend.databases import postgres_database, sqlite_url

    if request.param == "sqlite":
        url = sqlite_url(tmp_path_factory.mktemp("sqlite"))
        upgrade(url)
        yield url
    else:
        with postgres_database() as url:
            upgrade(url)
            yield url
