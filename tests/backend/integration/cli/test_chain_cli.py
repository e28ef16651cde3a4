import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from careledger.chain.clients import connect
from careledger.chain.deployment import Deployment
from careledger.errors import ChainUnavailable
from tests.backend.gateways import summarised_process

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "careledger.cli.main"]


def test_chain_up_deploys_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    target = tmp_path / "deployment.json"
    command = [*CLI, "chain", "up", "--json", "--deployment-file", str(target)]
    with summarised_process(command) as (proc, summary):
        deployment = Deployment.load(target)
        assert summary["contracts"] == {name: c.address for name, c in deployment.contracts.items()}
        deployment.check_chain(connect(summary["rpcUrl"]))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    with pytest.raises(ChainUnavailable):
        connect(summary["rpcUrl"], timeout=1)  # anvil stopped with it


def test_chain_up_on_a_taken_port_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*CLI, "chain", "up", "--port", str(port), "--exit-after-deploy",
             "--deployment-file", str(tmp_path / "d.json")],
            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: anvil")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
