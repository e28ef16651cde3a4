"""A local anvil from node_modules on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from careledger.chain.toolchain import foundry_binary
from careledger.errors import ChainUnavailable, ToolchainError

# anvil's well-known development mnemonic; its keys hold test ether only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Anvil:
    """An anvil process; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        port: int | None = None,
        block_time: float | None = None,
        accounts: int = 20,
        chain_id: int = 31337,
        state_file: Path | None = None,
        log_file: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.block_time = block_time
        self.accounts = accounts
        self.chain_id = chain_id
        self.state_file = state_file
        self.log_file = log_file
        self.extra_args = list(extra_args or [])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(foundry_binary("anvil")),
            "--host", self.host,
            "--port", str(self.port),
            "--accounts", str(self.accounts),
            "--chain-id", str(self.chain_id),
            "--mnemonic", DEV_MNEMONIC,
            "--gas-limit", "30000000",
        ]  # fmt: skip
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        if self.state_file is not None:
            cmd += ["--state", str(self.state_file)]
        return cmd + self.extra_args

    def start(self, timeout: float = 20.0) -> Anvil:
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise ToolchainError(f"could not start anvil: {exc}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ToolchainError(f"anvil exited with code {self._process.returncode} (port {self.port})")
            if _answers(self.url):
                return self
            time.sleep(0.05)
        self.stop()
        raise ChainUnavailable(f"anvil did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _answers(url: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    with contextlib.suppress(httpx.HTTPError):
        return httpx.post(url, json=body, timeout=1.0).status_code == 200
    return False
