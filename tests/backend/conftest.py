"""Shared fixtures: a real anvil with the contracts deployed, and admitted members."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from careledger.chain.devnet import Devnet, dev_key, start_devnet
from careledger.chain.sender import Sender
from careledger.codes import Role
from tests.backend.support import Cluster


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    net = start_devnet()
    try:
        yield net
    finally:
        net.anvil.stop()


@pytest.fixture(scope="session")
def cluster(devnet: Devnet) -> Cluster:
    ledger = devnet.ledger
    council = devnet.council()
    admitted: dict[str, Sender] = {}
    for index, (key, role, endpoint) in enumerate(
        [
            ("clinic", Role.CLINIC, "http://127.0.0.1:9001"),
            ("clinic_b", Role.CLINIC, "http://127.0.0.1:9002"),
            ("insurer", Role.INSURER, ""),
            ("researcher", Role.RESEARCH, ""),
            ("auditor", Role.AUDITOR, ""),
        ],
        start=10,
    ):
        member = ledger.sender(dev_key(index))
        pid = ledger.members.propose_admit(council[0], member.address, role, key, endpoint)
        assert ledger.members.vote(council[1], pid)
        admitted[key] = member
    relayer = ledger.sender(dev_key(15))
    ledger.members.set_relayer(admitted["clinic"], relayer.address)
    signer = Account.create()
    ledger.members.add_signer(admitted["insurer"], signer.address)
    return Cluster(
        devnet=devnet,
        ledger=ledger,
        council=council,
        clinic=admitted["clinic"],
        clinic_relayer=relayer,
        clinic_b=admitted["clinic_b"],
        insurer=admitted["insurer"],
        insurer_signer=signer,
        researcher=admitted["researcher"],
        auditor=admitted["auditor"],
    )


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
