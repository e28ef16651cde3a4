"""The allowlist sync against the real MemberRegistry on anvil and a fake of Besu's perm_* methods."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from typer.testing import CliRunner

from careledger.chain.allowlist import AllowlistSync, NodeSync, PermNode, sync_once
from careledger.chain.devnet import DEPLOYER_INDEX, Devnet, dev_key, start_devnet
from careledger.cli.allowlist import app
from careledger.codes import Role
from tests.backend.gateways import wait_until
from tests.backend.integration.deploy.fake_besu import FakePermNode

pytestmark = pytest.mark.integration

DEPLOYER = Account.from_key(dev_key(DEPLOYER_INDEX)).address
STRANGER = "0x" + "ab" * 20


@pytest.fixture(scope="module")
def net() -> Iterator[Devnet]:
    devnet = start_devnet()  # its own chain: these tests suspend and reinstate members
    try:
        yield devnet
    finally:
        devnet.anvil.stop()


def _allowed(node: FakePermNode) -> set[str]:
    return {a.lower() for a in node.accounts}


def _lower(*accounts: str) -> set[str]:
    return {a.lower() for a in accounts}


def test_sync_mirrors_members_and_relayers_and_drops_strangers(net: Devnet) -> None:
    ledger, council = net.ledger, net.council()
    clinic, relayer = ledger.sender(dev_key(10)), ledger.sender(dev_key(16))
    pid = ledger.members.propose_admit(
        council[0], clinic.address, Role.CLINIC, "Clinic Sync", "https://sync.example.org"
    )
    assert ledger.members.vote(council[1], pid)
    ledger.members.set_relayer(clinic, relayer.address)

    with FakePermNode([DEPLOYER, STRANGER]) as a, FakePermNode([]) as b:
        results = sync_once(ledger.members, [PermNode(a.url), PermNode(b.url)], keep=[DEPLOYER])
        expected = _lower(*(s.address for s in council), clinic.address, relayer.address, DEPLOYER)
        assert _allowed(a) == expected
        assert _allowed(b) == expected
        assert [r.error for r in results] == [None, None]
        assert results[0].removed == (to_checksum_address(STRANGER),)
        assert results[1].removed == ()

        # a second round has nothing to do and sends no edit
        calls = len(a.calls)
        again = sync_once(ledger.members, [PermNode(a.url)], keep=[DEPLOYER])
        assert again == [NodeSync(a.url)]
        assert len(a.calls) == calls


def test_suspension_removes_a_member_and_reinstatement_restores_it(net: Devnet) -> None:
    ledger, council = net.ledger, net.council()
    insurer = ledger.sender(dev_key(11))
    pid = ledger.members.propose_admit(council[0], insurer.address, Role.INSURER, "Insurer Sync", "")
    assert ledger.members.vote(council[1], pid)

    with FakePermNode() as node:
        perm = PermNode(node.url)
        sync_once(ledger.members, [perm])
        assert insurer.address.lower() in _allowed(node)

        pid = ledger.members.propose_suspend(council[0], insurer.address)
        assert ledger.members.vote(council[2], pid)
        [result] = sync_once(ledger.members, [perm])
        assert result.removed == (insurer.address,)
        assert insurer.address.lower() not in _allowed(node)
        assert _lower(*(s.address for s in council)) <= _allowed(node)  # seats stay

        pid = ledger.members.propose_reinstate(council[1], insurer.address)
        assert ledger.members.vote(council[2], pid)
        [result] = sync_once(ledger.members, [perm])
        assert result.added == (insurer.address,)
        assert insurer.address.lower() in _allowed(node)


def test_an_account_added_meanwhile_by_someone_else_does_not_fail_the_round(net: Devnet) -> None:
    seats = [s.address for s in net.council()]

    class StaleRead(PermNode):
        def accounts(self) -> set[str]:
            seen = super().accounts()
            node.accounts.append(seats[0].lower())  # another writer, right after our read
            return seen

    with FakePermNode() as node:
        [result] = sync_once(net.ledger.members, [StaleRead(node.url)])
        assert result.error is None
        assert _lower(*seats) <= _allowed(node)
        assert sorted(node.accounts) == sorted(set(node.accounts))  # nothing listed twice


def test_an_unreachable_node_fails_alone_and_the_cli_exits_1(net: Devnet, tmp_path: Path) -> None:
    deployment = tmp_path / "deployment.json"
    net.deployment.save(deployment)
    dead = "http://127.0.0.1:9"  # discard port: nothing answers JSON-RPC there
    with FakePermNode([STRANGER]) as live:
        results = sync_once(net.ledger.members, [PermNode(dead, timeout=2), PermNode(live.url)])
        assert results[0].error is not None and "unreachable" in results[0].error
        assert results[1].error is None and STRANGER not in _allowed(live)

        args = ["sync", "--once", "--rpc-url", net.anvil.url, "--deployment-file", str(deployment)]
        ok = CliRunner().invoke(app, [*args, "--node", live.url, "--keep", DEPLOYER])
        assert ok.exit_code == 0, ok.output
        assert f"{live.url}: added ['{DEPLOYER}']" in ok.output
        assert DEPLOYER.lower() in _allowed(live)

        bad = CliRunner().invoke(app, [*args, "--node", live.url, "--node", dead])
        assert bad.exit_code == 1
        assert f"{live.url}: added [], removed ['{DEPLOYER}']" in bad.output
        assert "Traceback" not in bad.output


def test_cli_refuses_a_keep_that_is_not_an_address(net: Devnet, tmp_path: Path) -> None:
    deployment = tmp_path / "deployment.json"
    net.deployment.save(deployment)
    result = CliRunner().invoke(
        app,
        ["sync", "--once", "--rpc-url", net.anvil.url, "--deployment-file", str(deployment),
         "--node", "http://127.0.0.1:9", "--keep", "not-an-address"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "'not-an-address' is not an account address" in result.output


def test_the_running_service_follows_an_admission(net: Devnet) -> None:
    ledger, council = net.ledger, net.council()
    newcomer = Account.create().address
    with FakePermNode() as node:
        service = AllowlistSync(ledger.members, [PermNode(node.url)], interval_s=0.1)
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: _lower(*(s.address for s in council)) <= _allowed(node), what="the seats")
            assert newcomer.lower() not in _allowed(node)
            pid = ledger.members.propose_admit(council[0], newcomer, Role.RESEARCH, "Newcomer", "")
            assert ledger.members.vote(council[1], pid)
            wait_until(lambda: newcomer.lower() in _allowed(node), what="the newcomer on the allowlist")
        finally:
            service.stop.set()
            thread.join(timeout=10)
        assert not thread.is_alive()


def test_a_node_answering_nonsense_fails_alone_and_keeps_its_list(net: Devnet) -> None:
    with FakePermNode(["not-an-address"]) as odd, FakePermNode() as good:
        results = sync_once(net.ledger.members, [PermNode(odd.url), PermNode(good.url)])
        assert results[0].error is not None and "perm_getAccountsAllowlist answered" in results[0].error
        assert odd.accounts == ["not-an-address"] and odd.calls == []  # nothing sent to it
        assert results[1].error is None and len(good.accounts) == len(net.ledger.members.allowlist())
