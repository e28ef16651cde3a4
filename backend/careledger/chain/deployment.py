"""Deploying the four contracts and the deployment file that names them.

The deployment file is all an auditor needs besides chain access: chain id, deployment
block, each contract's address, ABI and ABI hash, and the governance parameters.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from careledger.chain.compile import DEPLOYED, Artifact, abi_hash, compile_contracts
from careledger.chain.sender import Sender
from careledger.errors import ConfigurationError

FORMAT = "careledger-deployment/1"


@dataclass(frozen=True)
class ContractInfo:
    address: str
    abi: list[dict[str, Any]]
    abi_hash: str


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    deployment_block: int
    deployer: str
    contracts: dict[str, ContractInfo]
    council: list[str]
    threshold: int
    voting_period: int
    max_check_lag: int
    deployed_at: int = field(default_factory=lambda: int(time.time()))

    def address(self, name: str) -> str:
        return self.contracts[name].address

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "chainId": self.chain_id,
            "deploymentBlock": self.deployment_block,
            "deployer": self.deployer,
            "deployedAt": self.deployed_at,
            "governance": {
                "council": self.council,
                "threshold": self.threshold,
                "votingPeriod": self.voting_period,
                "maxCheckLag": self.max_check_lag,
            },
            "contracts": {
                name: {"address": c.address, "abiHash": c.abi_hash, "abi": c.abi}
                for name, c in self.contracts.items()
            },
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        """Read a deployment file, refusing one whose ABIs do not match their hashes."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigurationError(f"no deployment file at {path}") from None
        except ValueError as exc:
            raise ConfigurationError(f"deployment file {path} is not JSON: {exc}") from None
        if raw.get("format") != FORMAT:
            raise ConfigurationError(f"{path} is not a {FORMAT} file")
        contracts: dict[str, ContractInfo] = {}
        for name in DEPLOYED:
            entry = raw["contracts"].get(name)
            if entry is None:
                raise ConfigurationError(f"{path} names no {name}")
            if abi_hash(entry["abi"]) != entry["abiHash"]:
                raise ConfigurationError(f"{path}: the ABI of {name} does not match its abiHash")
            contracts[name] = ContractInfo(
                Web3.to_checksum_address(entry["address"]), entry["abi"], entry["abiHash"]
            )
        gov = raw["governance"]
        return cls(
            chain_id=int(raw["chainId"]),
            deployment_block=int(raw["deploymentBlock"]),
            deployer=raw["deployer"],
            contracts=contracts,
            council=list(gov["council"]),
            threshold=int(gov["threshold"]),
            voting_period=int(gov["votingPeriod"]),
            max_check_lag=int(gov["maxCheckLag"]),
            deployed_at=int(raw.get("deployedAt", 0)),
        )

    def check_chain(self, w3: Web3) -> None:
        """Refuse a chain whose id differs or where a contract has no code."""
        chain_id = int(w3.eth.chain_id)
        if chain_id != self.chain_id:
            raise ConfigurationError(f"deployment is for chain {self.chain_id}, the node is chain {chain_id}")
        for name, info in self.contracts.items():
            if len(w3.eth.get_code(Web3.to_checksum_address(info.address))) == 0:
                raise ConfigurationError(f"{name} has no code at {info.address} on chain {chain_id}")


def deploy(
    w3: Web3,
    deployer: Sender,
    *,
    council: list[str],
    threshold: int,
    voting_period: int = 7 * 24 * 3600,
    max_check_lag: int = 64,
    artifacts: dict[str, Artifact] | None = None,
) -> Deployment:
    """Deploy and wire MemberRegistry, ConsentRegistry, RecordRegistry and AccessLog."""
    artifacts = artifacts or compile_contracts()

    def create(name: str, *args: Any) -> tuple[str, int]:
        factory = w3.eth.contract(abi=artifacts[name].abi, bytecode=artifacts[name].bytecode)
        receipt = deployer.transact(name, factory.constructor(*args))
        address = receipt["contractAddress"]
        if address is None:
            raise ConfigurationError(f"deploying {name} created no contract")
        return Web3.to_checksum_address(address), int(receipt["blockNumber"])

    members, first_block = create("MemberRegistry", council, threshold, voting_period)
    consents, _ = create("ConsentRegistry", members)
    records, _ = create("RecordRegistry", members)
    access, _ = create("AccessLog", members, max_check_lag)
    addresses = {
        "MemberRegistry": members,
        "ConsentRegistry": consents,
        "RecordRegistry": records,
        "AccessLog": access,
    }
    return Deployment(
        chain_id=int(w3.eth.chain_id),
        deployment_block=first_block,
        deployer=deployer.address,
        contracts={
            name: ContractInfo(addresses[name], artifacts[name].abi, artifacts[name].abi_hash)
            for name in DEPLOYED
        },
        council=[Web3.to_checksum_address(a) for a in council],
        threshold=threshold,
        voting_period=voting_period,
        max_check_lag=max_check_lag,
    )
