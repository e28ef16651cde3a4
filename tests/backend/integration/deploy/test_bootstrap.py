"""The compose stacks' one-shot deploy scripts, run for real against a free-gas anvil.

Docker is not available here, so the scripts run on this machine with the environment the
compose file gives their services (host names swapped for loopback URLs); for the Besu
profile, the validators' perm_* methods are the loopback fake (Besu runs only in Docker).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from typer.testing import CliRunner

from careledger.chain.anvil import Anvil, free_port
from careledger.chain.clients import Ledger
from careledger.chain.deployment import Deployment
from careledger.cli.allowlist import app as allowlist_app
from careledger.cli.deploy import app as deploy_app
from careledger.cli.gateway import app as gateway_app
from careledger.codes import MemberStatus, Role
from careledger.config import Settings
from careledger.services.gateway import build_gateway, load_private_key
from tests.backend.databases import postgres_database
from tests.backend.gateways import wait_until
from tests.backend.integration.deploy.conftest import ROOT, command_words
from tests.backend.integration.deploy.fake_besu import FakePermNode

pytestmark = pytest.mark.integration

# The compose file's anvil flags that make gas free (as on the Besu network), so keys made
# by `gateway init-keys` and generate.py need no ether.
FREE_GAS = ["--block-base-fee-per-gas", "0", "--disable-min-priority-fee"]


@pytest.fixture
def anvil(compose: dict[str, Any]) -> Iterator[Anvil]:
    flags = command_words(compose["services"]["anvil"])
    assert "--block-base-fee-per-gas=0" in flags and "--disable-min-priority-fee" in flags
    with Anvil(extra_args=FREE_GAS) as chain:
        yield chain


def _init_keys(folder: Path) -> Path:
    result = CliRunner().invoke(
        gateway_app,
        [
            "init-keys",
            "--kek-file",
            str(folder / "kek.hex"),
            "--relayer-key-file",
            str(folder / "relayer.key"),
        ],
    )
    assert result.exit_code == 0, result.output
    return folder / "relayer.key"


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / script)],
        env={**os.environ, "PYTHON": sys.executable, "COLUMNS": "200", **env},
        capture_output=True, text=True, timeout=180, cwd=ROOT, check=False,
    )  # fmt: skip


def _relayer_address(path: Path) -> str:
    return str(Account.from_key(load_private_key(path)).address)


def test_default_stack_deploy_lets_the_compose_gateway_start(
    compose: dict[str, Any], anvil: Anvil, tmp_path: Path
) -> None:
    services = compose["services"]
    relayer_key = _init_keys(tmp_path)
    deployment = tmp_path / "deployment.json"
    env = {k: str(v) for k, v in services["deploy"]["environment"].items()}
    env |= {"CARELEDGER_RPC_URL": anvil.url, "CARELEDGER_DEPLOYMENT_FILE": str(deployment),
            "RELAYER_KEY_FILE": str(relayer_key)}  # fmt: skip
    first = _run("deploy/dev/bootstrap.sh", env)
    assert first.returncode == 0, first.stderr
    assert Deployment.load(deployment).address("MemberRegistry") in first.stdout

    ledger = Ledger.connect(anvil.url, Deployment.load(deployment))
    acts_for, role = ledger.members.active_sender(_relayer_address(relayer_key))
    assert role is Role.CLINIC and acts_for == services["gateway"]["environment"]["CARELEDGER_MEMBER_ADDRESS"]

    # The gateway as compose runs it: its command and environment, with this machine's
    # paths, chain, PostgreSQL and a free loopback port for the container's; healthy when
    # the compose health check says so. It refuses to start on any mismatch with what the
    # deploy step registered (member, role, endpoint, relayer).
    port = free_port()
    words = command_words(services["gateway"])
    assert words[:3] == ["careledger", "gateway", "serve"]
    command = [sys.executable, "-m", "careledger.cli.main", *words[1:]]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    with postgres_database() as database_url:
        env = {k: str(v) for k, v in services["gateway"]["environment"].items()}
        env |= {
            "CARELEDGER_RPC_URL": anvil.url,
            "CARELEDGER_DEPLOYMENT_FILE": str(deployment),
            "CARELEDGER_DATABASE_URL": database_url,
            "CARELEDGER_KEK_FILE": str(tmp_path / "kek.hex"),
            "CARELEDGER_RELAYER_KEY_FILE": str(relayer_key),
        }
        log = tmp_path / "gateway.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            probe = [w.replace(":8000/", f":{port}/") for w in services["gateway"]["healthcheck"]["test"][1:]]
            probe[0] = sys.executable

            def healthy() -> bool:
                assert process.poll() is None, log.read_text()[-3000:]
                return subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0

            wait_until(healthy, timeout=60, what="the compose health check to pass")
        finally:
            process.terminate()
            process.wait(timeout=20)


def test_every_step_run_again_finds_its_work_done(anvil: Anvil, tmp_path: Path) -> None:
    relayer_key = _init_keys(tmp_path)
    env = {
        "CARELEDGER_RPC_URL": anvil.url,
        "CARELEDGER_DEPLOYMENT_FILE": str(tmp_path / "d.json"),
        "COLUMNS": "200",
    }
    steps = [
        ["contracts", "--deployer-key", "anvil:0", "--council", "anvil:1", "--council", "anvil:2",
         "--threshold", "2"],
        ["admit", "--council-key", "anvil:1", "--council-key", "anvil:2", "--member", "anvil:11",
         "--role", "clinic", "--name", "Clinic B", "--endpoint", "https://clinic-b.example.org"],
        ["relayer", "--member-key", "anvil:11", "--relayer-key", str(relayer_key)],
    ]  # fmt: skip
    for step in steps:
        assert CliRunner().invoke(deploy_app, step, env=env).exit_code == 0
    outputs = [CliRunner().invoke(deploy_app, step, env=env) for step in steps]
    assert [r.exit_code for r in outputs] == [0, 0, 0]
    assert "already deployed" in outputs[0].output
    assert "already a member" in outputs[1].output
    assert "already set" in outputs[2].output
    wrong_role = CliRunner().invoke(deploy_app, [*steps[1][:-6], "--role", "INSURER", "--name", "B"], env=env)
    assert wrong_role.exit_code == 1 and "already a CLINIC member, not INSURER" in wrong_role.output
    too_few = CliRunner().invoke(
        deploy_app, ["admit", "--council-key", "anvil:1", "--member", "anvil:12", "--role", "INSURER",
                     "--name", "Insurer"], env=env)  # fmt: skip
    assert too_few.exit_code == 1 and "1 of 2 approvals: give more --council-key" in too_few.output


def test_deploy_refuses_a_stale_deployment_file_unless_told(anvil: Anvil, tmp_path: Path) -> None:
    deployment = tmp_path / "deployment.json"
    args = ["contracts", "--deployer-key", "anvil:0", "--council", "anvil:1", "--council", "anvil:2",
            "--threshold", "2", "--deployment-file", str(deployment)]  # fmt: skip
    with Anvil(extra_args=FREE_GAS) as wiped:  # a chain whose state was since thrown away
        assert CliRunner().invoke(deploy_app, [*args, "--rpc-url", wiped.url]).exit_code == 0
    refused = CliRunner().invoke(deploy_app, [*args, "--rpc-url", anvil.url], env={"COLUMNS": "200"})
    assert refused.exit_code == 1
    assert "does not match this chain" in refused.output and "has no code" in refused.output
    replaced = CliRunner().invoke(deploy_app, [*args, "--rpc-url", anvil.url, "--replace-stale"])
    assert replaced.exit_code == 0, replaced.output
    Deployment.load(deployment).check_chain(Ledger.connect(anvil.url, Deployment.load(deployment)).w3)


def test_anvil_keys_are_refused_on_another_chain(tmp_path: Path) -> None:
    with Anvil(chain_id=20261) as other:
        result = CliRunner().invoke(
            deploy_app,
            ["contracts", "--deployer-key", "anvil:0", "--council", "anvil:1", "--threshold", "1",
             "--rpc-url", other.url, "--deployment-file", str(tmp_path / "d.json")],
            env={"COLUMNS": "200"},
        )  # fmt: skip
    assert result.exit_code == 1
    assert "anvil dev keys are public; refused on chain 20261" in result.output
    assert not (tmp_path / "d.json").exists()


def test_besu_profile_deploy_admits_custodians_and_syncs_every_validator(
    compose: dict[str, Any], anvil: Anvil, generated: Path, tmp_path: Path
) -> None:
    service = compose["services"]["besu-deploy"]
    initial = tomllib.loads((generated / "network" / "permissions_config.toml").read_text())[
        "accounts-allowlist"
    ]
    keys_a, keys_b = tmp_path / "a", tmp_path / "b"
    relayer_a, relayer_b = _init_keys(keys_a), _init_keys(keys_b)
    deployment = tmp_path / "deployment.json"
    with ExitStack() as stack:
        nodes = [stack.enter_context(FakePermNode(initial)) for _ in range(4)]
        env = {k: str(v) for k, v in service["environment"].items()}
        env |= {
            "CARELEDGER_RPC_URL": anvil.url,
            "CARELEDGER_DEPLOYMENT_FILE": str(deployment),
            "ACCOUNTS": str(generated / "accounts"),
            "BESU_NODES": " ".join(n.url for n in nodes),
            "CLINIC_A_ENDPOINT": "http://127.0.0.1:8011",
            "CLINIC_B_ENDPOINT": "http://127.0.0.1:8012",
            "CLINIC_A_RELAYER_KEY_FILE": str(relayer_a),
            "CLINIC_B_RELAYER_KEY_FILE": str(relayer_b),
        }
        result = _run("deploy/besu/bootstrap.sh", env)
        assert result.returncode == 0, result.stdout + result.stderr

        ledger = Ledger.connect(anvil.url, Deployment.load(deployment))
        accounts = {
            p.stem: Account.from_key(load_private_key(p)).address for p in (generated / "accounts").iterdir()
        }
        assert ledger.deployment.deployer == accounts["deployer"]
        assert ledger.members.seats() == [accounts[f"council-{i}"] for i in (1, 2, 3)]
        for custodian, relayer in (("custodian-a", relayer_a), ("custodian-b", relayer_b)):
            member = ledger.members.get_member(accounts[custodian])
            assert (member.role, member.status) == (Role.CLINIC, MemberStatus.ACTIVE)
            assert member.relayer == _relayer_address(relayer)

        # Every validator allowed the seats and custodians and dropped the deployer; the
        # relayers, registered after that round, come with the sync service's next round.
        allowed = {a.lower() for a in ledger.members.allowlist()}
        relayers = {_relayer_address(relayer_a).lower(), _relayer_address(relayer_b).lower()}
        for node in nodes:
            assert set(node.accounts) == allowed - relayers
            assert accounts["deployer"].lower() not in node.accounts
        sync_words = command_words(compose["services"]["allowlist-sync"])
        args = [*sync_words[4:], "--once", "--rpc-url", anvil.url, "--deployment-file", str(deployment)]
        args = [a for a in args if not a.startswith(("--node=", "--interval="))]
        args += [f"--node={n.url}" for n in nodes]
        synced = CliRunner().invoke(allowlist_app, ["sync", *args], env={"COLUMNS": "200"})
        assert synced.exit_code == 0, synced.output
        for node in nodes:
            assert set(node.accounts) == allowed

    # Each custodian's gateway, configured as compose configures it with the generated
    # compose.env (its member address), accepts the chain the deploy step left: member,
    # role, registered endpoint and relayer all agree (build_gateway refuses otherwise).
    values = dict(line.split("=", 1) for line in (generated / "compose.env").read_text().splitlines())
    for name, keys in (("clinic-a-gateway", keys_a), ("clinic-b-gateway", keys_b)):
        env = {k: _interpolate(str(v), values) for k, v in compose["services"][name]["environment"].items()}
        settings = Settings(
            rpc_url=anvil.url,
            deployment_file=deployment,
            member_address=env["CARELEDGER_MEMBER_ADDRESS"],
            endpoint=env["CARELEDGER_ENDPOINT"],
            database_url=f"sqlite:///{keys / 'gateway.db'}",
            kek_file=keys / "kek.hex",
            relayer_key_file=keys / "relayer.key",
        )
        gateway = build_gateway(settings)
        gateway.close()


def _interpolate(value: str, values: dict[str, str]) -> str:
    """Compose's ${VAR:-default} with `values` as the environment."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: values.get(m.group(1)) or m.group(2) or "", value)
