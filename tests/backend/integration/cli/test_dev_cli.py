import signal
from pathlib import Path

import httpx
import pytest

from careledger.chain.clients import connect
from careledger.errors import ChainUnavailable
from tests.backend.gateways import dev_command, summarised_process, wait_gateway_ready

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_dev_serves_the_cluster_and_a_signal_stops_everything(tmp_path: Path, stop: signal.Signals) -> None:
    command = [*dev_command(tmp_path / "dev"), *([] if stop is signal.SIGINT else ["--no-seed"])]
    with summarised_process(command) as (proc, summary):
        assert set(summary["gateways"]) == {"Clinic A", "Clinic B"}
        for url in summary["gateways"].values():
            wait_gateway_ready(url, timeout=15.0)
        env = (tmp_path / "dev" / "env").read_text()
        assert f"CARELEDGER_RPC_URL={summary['rpcUrl']}" in env
        assert sorted(p.name for p in (tmp_path / "dev" / "keys").iterdir()) == [
            "auditor.key", "clinic-a.key", "clinic-b.key", "council-1.key", "council-2.key",
            "council-3.key", "insurer.key", "research.key",
        ]  # fmt: skip
        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0
    with pytest.raises(ChainUnavailable):
        connect(summary["rpcUrl"], timeout=1)
    for url in summary["gateways"].values():
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/health", timeout=1)
