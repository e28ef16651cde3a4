import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from careledger.chain.clients import connect
from careledger.errors import ChainUnavailable

pytestmark = pytest.mark.integration


def test_dev_serves_a_gateway_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "careledger.cli.main",
            "dev",
            "--json",
            "--anvil-port",
            "0",
            "--gateway-port",
            "0",
            "--directory",
            str(tmp_path / "dev"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        summary = json.loads(proc.stdout.readline())
        assert _ready_with_relayer(summary["gatewayUrl"]), "the gateway never became ready with its relayer"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(ChainUnavailable):
        connect(summary["rpcUrl"], timeout=1)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{summary['gatewayUrl']}/health", timeout=1)


def _ready_with_relayer(url: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = httpx.get(f"{url}/ready", timeout=1).json()
            if state["ready"] and state["relayer"]["holdsLease"]:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False
