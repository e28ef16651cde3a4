"""The layering of DESIGN.md, enforced: each layer imports only those below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "backend" / "careledger"

# layer → careledger layers it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "logs": set(),
    "hashing": set(),
    "codes": set(),
    "config": {"errors"},
    "crypto": {"errors", "codes", "config"},
    "store": {"errors", "codes", "config"},
    "chain": {"errors", "codes", "config"},
    "auth": {"errors", "codes", "config", "chain", "crypto"},
    "services": {"errors", "codes", "config", "chain", "crypto", "store", "auth"},
    "api": {"errors", "codes", "config", "services", "auth"},
    "cli": {"errors", "codes", "config", "services", "chain", "auth", "crypto", "api", "client", "audit"},
    "audit": {"errors", "codes", "config", "logs", "chain", "crypto", "client", "auth"},
    "client": {"errors", "codes", "config", "chain", "crypto", "auth"},
}
# third-party package → the only layer that may import it
OWNED = {"fastapi": "api", "sqlalchemy": "store", "web3": "chain", "cryptography.hazmat": "crypto"}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "package"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if _layer(p) != "package")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_layers_below(path: Path) -> None:
    layer = _layer(path)
    assert layer in ALLOWED, f"{layer} is not a known layer; add it to ALLOWED"
    for name in _imports(path):
        if name.startswith("careledger."):
            target = name.split(".")[1]
            allowed = ALLOWED[layer] | ({"logs", "hashing"} if layer not in ("errors", "codes") else set())
            assert target == layer or target in allowed, f"{layer} must not import {name}"
        for package, owner in OWNED.items():
            if name == package or name.startswith(package + "."):
                assert layer == owner, f"only {owner} may import {package} ({path.name} imports {name})"


def test_layer_check_sees_the_chain_layer() -> None:
    assert any(_layer(p) == "chain" for p in SOURCES)
