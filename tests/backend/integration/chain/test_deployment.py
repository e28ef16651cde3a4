import json
import subprocess
from pathlib import Path

import pytest

from careledger.chain.compile import DEPLOYED, compile_contracts
from careledger.chain.deployment import Deployment
from careledger.chain.devnet import Devnet
from careledger.chain.toolchain import PROJECT_ROOT, foundry_binary
from careledger.errors import ConfigurationError

pytestmark = pytest.mark.integration


def test_python_build_equals_forge_build() -> None:
    """The deployer ships the bytecode the Solidity tests ran against (same settings, same solc)."""
    subprocess.run([str(foundry_binary("forge")), "build", "--skip", "test"], cwd=PROJECT_ROOT, check=True,
                   capture_output=True)  # fmt: skip
    ours = compile_contracts()
    for name in DEPLOYED:
        forge = json.loads(
            (PROJECT_ROOT / "build" / "forge" / "out" / f"{name}.sol" / f"{name}.json").read_text()
        )
        assert ours[name].bytecode == forge["bytecode"]["object"], name
        assert _canonical(ours[name].abi) == _canonical(forge["abi"]), name


def _canonical(abi: list[dict[str, object]]) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in abi)


def test_deployment_file_round_trips_and_checks_chain(devnet: Devnet, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    devnet.deployment.save(path)
    loaded = Deployment.load(path)
    assert loaded == devnet.deployment
    loaded.check_chain(devnet.ledger.w3)
    raw = json.loads(path.read_text())
    assert set(raw["contracts"]) == set(DEPLOYED)
    assert raw["deploymentBlock"] >= 1 and raw["chainId"] == 31337


def test_deployment_file_with_altered_abi_is_refused(devnet: Devnet, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    devnet.deployment.save(path)
    raw = json.loads(path.read_text())
    raw["contracts"]["AccessLog"]["abi"] = raw["contracts"]["AccessLog"]["abi"][1:]
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigurationError, match="does not match its abiHash"):
        Deployment.load(path)


def test_deployment_for_another_chain_is_refused(devnet: Devnet, tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    devnet.deployment.save(path)
    raw = json.loads(path.read_text())
    raw["chainId"] = 1
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigurationError, match="deployment is for chain 1"):
        Deployment.load(path).check_chain(devnet.ledger.w3)


def test_missing_deployment_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no deployment file"):
        Deployment.load(tmp_path / "absent.json")
