"""Fixtures for the deployment checks: the compose file as data, a generated Besu network."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
COMPOSE_FILES = sorted(ROOT.glob("docker-compose*.yml")) + sorted((ROOT / "deploy").rglob("compose*.yml"))


def load_compose(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return dict(yaml.safe_load(f))  # safe_load resolves the `<<: *anchor` merges


def load_generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("besu_generate", ROOT / "deploy" / "besu" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def command_words(service: dict[str, Any]) -> list[str]:
    """A service's command as words (a string command is split as the shell would)."""
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return load_compose(ROOT / "docker-compose.yml")


@pytest.fixture(scope="session")
def generate() -> ModuleType:
    return load_generate()


@pytest.fixture(scope="session")
def generated(generate: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A network written by deploy/besu/generate.py, standing in for deploy/besu/generated."""
    out = tmp_path_factory.mktemp("besu") / "generated"
    assert generate.main(["--out", str(out)]) == 0
    return out
