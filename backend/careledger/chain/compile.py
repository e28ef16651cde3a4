"""Compile the contracts with py-solc-x through the solc shim, with foundry.toml's settings.

Forge and this module read the same `[profile.default]` of foundry.toml, so the bytecode
the Python deployer ships is the bytecode the Solidity tests ran against.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from typing import Any

import solcx

from careledger.chain.toolchain import CONTRACTS_DIR, FOUNDRY_TOML, PROJECT_ROOT, solc_shim
from careledger.errors import CompilationError, ToolchainError

DEPLOYED = ("MemberRegistry", "ConsentRegistry", "RecordRegistry", "AccessLog")
CACHE_DIR = PROJECT_ROOT / "build" / "python"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str

    @property
    def abi_hash(self) -> str:
        """sha256 of the ABI in canonical JSON: what a deployment file pins."""
        return abi_hash(self.abi)


def abi_hash(abi: list[dict[str, Any]]) -> str:
    canonical = json.dumps(abi, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def foundry_settings(profile: str = "default") -> dict[str, Any]:
    """solc standard-JSON `settings` equivalent to foundry.toml's profile."""
    with FOUNDRY_TOML.open("rb") as f:
        config = tomllib.load(f)["profile"]
    merged = {**config["default"], **config.get(profile, {})}
    remappings = list(merged.get("remappings", []))
    return {
        "optimizer": {"enabled": bool(merged.get("optimizer", False)), "runs": int(merged["optimizer_runs"])},
        "evmVersion": merged["evm_version"],
        "viaIR": bool(merged.get("via_ir", False)),
        "metadata": {"bytecodeHash": merged.get("bytecode_hash", "ipfs")},
        "remappings": remappings,
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
    }


def _sources() -> dict[str, dict[str, str]]:
    return {
        str(path.relative_to(PROJECT_ROOT)): {"content": path.read_text()}
        for path in sorted(CONTRACTS_DIR.rglob("*.sol"))
    }


def _input_key(standard_input: dict[str, Any]) -> str:
    lock = PROJECT_ROOT / "package-lock.json"
    digest = hashlib.sha256(json.dumps(standard_input, sort_keys=True).encode())
    digest.update(lock.read_bytes() if lock.exists() else b"")
    return digest.hexdigest()[:32]


def compile_contracts(*, use_cache: bool = True) -> dict[str, Artifact]:
    """Compile contracts/ and return the four deployed contracts' artifacts by name."""
    standard_input = {"language": "Solidity", "sources": _sources(), "settings": foundry_settings()}
    cache_file = CACHE_DIR / f"artifacts-{_input_key(standard_input)}.json"
    if use_cache and cache_file.exists():
        raw = json.loads(cache_file.read_text())
    else:
        raw = _run_solc(standard_input)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw))
        tmp.replace(cache_file)
    return {name: Artifact(name, raw[name]["abi"], raw[name]["bytecode"]) for name in DEPLOYED}


def _run_solc(standard_input: dict[str, Any]) -> dict[str, dict[str, Any]]:
    try:
        output = solcx.compile_standard(
            standard_input,
            base_path=str(PROJECT_ROOT),
            allow_paths=[str(PROJECT_ROOT)],
            solc_binary=solc_shim(),
        )
    except solcx.exceptions.SolcError as exc:
        raise CompilationError(_errors_text(getattr(exc, "stdout_data", "") or str(exc))) from None
    except OSError as exc:
        raise ToolchainError(f"could not run the solc shim: {exc}") from None
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompilationError("\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    result: dict[str, dict[str, Any]] = {}
    for name in DEPLOYED:
        source = f"contracts/{name}.sol"
        try:
            contract = output["contracts"][source][name]
        except KeyError:
            raise CompilationError(f"{name} missing from the compiler's output") from None
        result[name] = {"abi": contract["abi"], "bytecode": "0x" + contract["evm"]["bytecode"]["object"]}
    return result


def _errors_text(stdout: str) -> str:
    try:
        parsed = json.loads(stdout)
    except ValueError:
        return stdout.strip()[:2000]
    return "\n".join(e.get("formattedMessage", "") for e in parsed.get("errors", []))
