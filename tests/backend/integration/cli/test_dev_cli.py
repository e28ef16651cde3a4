import signal
from pathlib import Path

import httpx
import pytest

from careledger.chain.clients import connect
from careledger.errors import ChainUnavailable
from tests.backend.gateways import dev_command, summarised_process, wait_gateway_ready

pytestmark = pytest.mark.integration


def test_dev_serves_a_gateway_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    with summarised_process(dev_command(tmp_path / "dev")) as (proc, summary):
        wait_gateway_ready(summary["gatewayUrl"], timeout=15.0)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    with pytest.raises(ChainUnavailable):
        connect(summary["rpcUrl"], timeout=1)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{summary['gatewayUrl']}/health", timeout=1)
