"""The README's walkthrough, run as written against `careledger dev`: it cannot drift."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backend.gateways import dev_command, wait_gateway_ready

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_walkthrough_prints_what_it_says(tmp_path: Path) -> None:
    (script,) = [b for b in _blocks("python") if "CareLedgerClient" in b]
    (expected,) = [b for b in _blocks("text") if "verified against the chain" in b]
    dev = subprocess.Popen(
        dev_command(tmp_path / "dev"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert dev.stdout is not None
        summary = json.loads(dev.stdout.readline())
        wait_gateway_ready(summary["gatewayUrl"])
        script = (
            script.replace("http://127.0.0.1:8545", summary["rpcUrl"])
            .replace("http://127.0.0.1:8001", summary["gatewayUrl"])
            .replace(".careledger/dev/deployment.json", summary["deploymentFile"])
        )
        run = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout == expected
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
