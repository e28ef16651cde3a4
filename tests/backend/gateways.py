"""Real gateways for tests: uvicorn in its own process, on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from careledger.chain.anvil import free_port
from careledger.chain.devnet import Devnet
from careledger.chain.sender import Sender
from careledger.crypto.keyfile import create_key_file


@dataclass
class GatewayProcess:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start the same gateway again (same database, keys and port)."""
        port = int(self.url.rsplit(":", 1)[1])
        self.process = _start(self.env, port, self.log)
        _wait_ready(self.url, self.process, self.log)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "careledger.cli.main", "gateway", "serve", "--port", str(port)]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gateway did not start:\n{log.read_text()[-3000:]}")


@contextmanager
def running_gateway(
    devnet: Devnet, admin: Sender, relayer_key: bytes, database_url: str, directory: Path, **extra: str
) -> Iterator[GatewayProcess]:
    """A gateway for member `admin`, its endpoint registered on chain first."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    devnet.ledger.members.set_endpoint(admin, url)
    deployment = directory / "deployment.json"
    devnet.deployment.save(deployment)
    kek = directory / "kek.hex"
    if not kek.exists():
        create_key_file(kek)
    relayer = directory / "relayer.key"
    relayer.write_text(relayer_key.hex())
    env = {
        **os.environ,
        "CARELEDGER_RPC_URL": devnet.anvil.url,
        "CARELEDGER_DEPLOYMENT_FILE": str(deployment),
        "CARELEDGER_MEMBER_ADDRESS": admin.address,
        "CARELEDGER_ENDPOINT": url,
        "CARELEDGER_DATABASE_URL": database_url,
        "CARELEDGER_KEK_FILE": str(kek),
        "CARELEDGER_RELAYER_KEY_FILE": str(relayer),
        "CARELEDGER_ANCHOR_BATCH_MAX_AGE_S": "0.05",
        "CARELEDGER_LOG_BATCH_MAX_AGE_S": "0.05",
        **{f"CARELEDGER_{k.upper()}": v for k, v in extra.items()},
    }
    log = directory / "gateway.log"
    process = _start(env, port, log)
    gateway = GatewayProcess(url, env, process, log)
    try:
        _wait_ready(url, process, log)
        yield gateway
    finally:
        gateway.stop()


def relayer_key_for(devnet: Devnet, admin: Sender, dev_index: int) -> bytes:
    """Dev key `dev_index`, registered as `admin`'s relayer unless it already is."""
    from careledger.chain.devnet import dev_key

    key = dev_key(dev_index)
    relayer = devnet.ledger.sender(key)
    member, _ = devnet.ledger.members.key_of(relayer.address)
    if member != admin.address:
        devnet.ledger.members.set_relayer(admin, relayer.address)
    return key
