"""deploy/besu/generate.py: the QBFT genesis, node keys and initial allowlist it writes."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from eth_account import Account
from eth_keys import keys

# Besu's documentation, "Configure QBFT consensus", genesis for block header validator
# selection: its extraData and the four validators it names.
BESU_DOC_EXTRA_DATA = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f85494"
    "64a702e6263b7297a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a03185"
    "94aefdb9a738c9f433e5b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78c080c0"
)
BESU_DOC_VALIDATORS = [
    "0x64a702e6263b7297a96638cac6ae65e6541f4169",
    "0x3923390ad55e90c237593b3b0e401f3b08a03185",
    "0xaefdb9a738c9f433e5b6b212a6d62f6370c2f692",
    "0xc7eeb9a4e00ce683cf93039b212648e01c6c6b78",
]
# The same page's genesis for contract validator selection: no validator in extraData.
BESU_DOC_EMPTY_EXTRA_DATA = "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0"


def test_extra_data_matches_besus_documented_qbft_genesis(generate: ModuleType) -> None:
    assert generate.qbft_extra_data(BESU_DOC_VALIDATORS) == BESU_DOC_EXTRA_DATA
    assert generate.qbft_extra_data([]) == BESU_DOC_EMPTY_EXTRA_DATA
    decoded = generate.decode_extra_data(BESU_DOC_EXTRA_DATA)
    assert [a.lower() for a in decoded] == BESU_DOC_VALIDATORS


def test_decode_refuses_an_extra_data_with_a_vote(generate: ModuleType) -> None:
    import rlp

    voted = "0x" + rlp.encode([b"\x00" * 32, [], [bytes(20), b"\x01"], 0, []]).hex()
    with pytest.raises(ValueError, match="not a genesis QBFT extraData"):
        generate.decode_extra_data(voted)


def test_genesis_names_the_four_validators_whose_keys_were_written(
    generated: Path, generate: ModuleType
) -> None:
    genesis = json.loads((generated / "network" / "genesis.json").read_text())
    validators = generate.decode_extra_data(genesis["extraData"])
    from_keys = []
    for i in range(1, 5):
        private = bytes.fromhex((generated / f"node-{i}" / "key").read_text().removeprefix("0x"))
        public = keys.PrivateKey(private).public_key
        assert (generated / f"node-{i}" / "key.pub").read_text() == "0x" + public.to_bytes().hex()
        from_keys.append(public.to_checksum_address())
    assert sorted(validators) == sorted(from_keys)
    assert len(set(validators)) == 4
    summary = json.loads((generated / "network" / "network.json").read_text())
    assert [v["address"] for v in summary["validators"]] == from_keys


def test_genesis_is_a_free_gas_qbft_chain_through_cancun(generated: Path) -> None:
    genesis = json.loads((generated / "network" / "genesis.json").read_text())
    config = genesis["config"]
    assert set(config["qbft"]) == {"blockperiodseconds", "epochlength", "requesttimeoutseconds"}
    assert config["zeroBaseFee"] is True
    assert config["londonBlock"] == 0 and config["shanghaiTime"] == 0 and config["cancunTime"] == 0
    assert int(genesis["gasLimit"], 16) == 30_000_000
    assert genesis["mixHash"] == "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"


def test_static_nodes_are_the_validators_at_their_compose_addresses(generated: Path) -> None:
    enodes = json.loads((generated / "network" / "static-nodes.json").read_text())
    for i, enode in enumerate(enodes, start=1):
        public = (generated / f"node-{i}" / "key.pub").read_text().removeprefix("0x")
        assert enode == f"enode://{public}@172.28.0.{10 + i}:30303"


def test_initial_allowlist_is_the_deployer_and_the_council(generated: Path) -> None:
    summary = json.loads((generated / "network" / "network.json").read_text())
    permissions = tomllib.loads((generated / "network" / "permissions_config.toml").read_text())
    expected = [summary["accounts"][n].lower() for n in ("deployer", "council-1", "council-2", "council-3")]
    assert permissions == {"accounts-allowlist": expected}
    for name, address in summary["accounts"].items():
        key = (generated / "accounts" / f"{name}.key").read_text().strip()
        assert Account.from_key(key).address == address
    env = dict(line.split("=", 1) for line in (generated / "compose.env").read_text().splitlines())
    assert env["CLINIC_A_MEMBER"] == summary["accounts"]["custodian-a"]
    assert env["CLINIC_B_MEMBER"] == summary["accounts"]["custodian-b"]
    assert (
        len(env["CLINIC_A_DB_PASSWORD"]) == 48 and env["CLINIC_A_DB_PASSWORD"] != env["CLINIC_B_DB_PASSWORD"]
    )


def test_keys_sit_in_a_folder_only_its_owner_can_enter(generated: Path) -> None:
    assert stat.S_IMODE(generated.stat().st_mode) == 0o700


def test_a_second_run_keeps_the_keys_unless_forced(
    generated: Path, generate: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (generated / "node-1" / "key").read_text()
    assert generate.main(["--out", str(generated)]) == 1
    assert "pass --force" in capsys.readouterr().err
    assert (generated / "node-1" / "key").read_text() == before


def test_generated_folder_is_git_ignored() -> None:
    import subprocess

    from tests.backend.integration.deploy.conftest import ROOT

    probe = "deploy/besu/generated/node-1/key"
    result = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT, check=False)
    assert result.returncode == 0, f"{probe} is not git-ignored"
