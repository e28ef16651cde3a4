"""Where the project's toolchain lives: npm-installed Foundry binaries and the solc shim."""

from __future__ import annotations

import platform
from pathlib import Path

from careledger.errors import ToolchainError

PROJECT_ROOT = Path(__file__).resolve().parents[3]
NODE_MODULES = PROJECT_ROOT / "node_modules"
SOLC_SHIM = PROJECT_ROOT / "scripts" / "solc"
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
FOUNDRY_TOML = PROJECT_ROOT / "foundry.toml"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_OS = {"Linux": "linux", "Darwin": "darwin"}


def foundry_binary(tool: str) -> Path:
    """Path of `anvil`, `forge` or `cast` as installed by npm (`@foundry-rs/<tool>-<os>-<arch>`).

    The binary is called directly rather than through npm's node wrapper, so that a
    signal sent to it reaches the process that holds the port.
    """
    os_name = _OS.get(platform.system())
    arch = _ARCH.get(platform.machine().lower())
    if os_name is None or arch is None:
        raise ToolchainError(f"no Foundry npm build for {platform.system()} {platform.machine()}")
    path = NODE_MODULES / "@foundry-rs" / f"{tool}-{os_name}-{arch}" / "bin" / tool
    if not path.is_file():
        raise ToolchainError(f"{tool} not found at {path}; run ./scripts/test or `npm ci` to install it")
    return path


def solc_shim() -> Path:
    """The executable that speaks solc's CLI on top of npm `solc` (see scripts/solc)."""
    if not (NODE_MODULES / "solc").is_dir():
        raise ToolchainError("npm package solc is missing; run ./scripts/test or `npm ci`")
    return SOLC_SHIM
