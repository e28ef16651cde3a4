"""The FHIR fixtures of tests/fixtures/fhir, read as the gateway reads a request body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from careledger.services.fhir import parse_json

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "fhir"
EXAMPLES = FIXTURES / "r4-examples"


def load(name: str) -> dict[str, Any]:
    """A fixture by file name: an official example, or a file directly under fixtures/fhir."""
    path = EXAMPLES / name if (EXAMPLES / name).exists() else FIXTURES / name
    return parse_json(path.read_bytes())


def example_names() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.json"))
