"""The compose health checks, run as written against real listeners on loopback.

The anvil check runs against a real anvil; the gateway and Besu checks against a tiny HTTP
server answering the status the check must tell apart (200 healthy, 503 not), with the
port swapped for the listener's. Each check runs with the tool its image has (node, Python,
bash)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from careledger.chain.anvil import Anvil


class _Status:
    def __init__(self) -> None:
        self.code = 200
        self.paths: list[str] = []


@pytest.fixture
def listener() -> Iterator[tuple[int, _Status]]:
    status = _Status()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status.paths.append(self.path)
            self.send_response(status.code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], status
    finally:
        server.shutdown()
        server.server_close()


def _run(test: list[str], port: int, listens_on: int) -> int:
    assert test[0] == "CMD"
    words = [w.replace(str(listens_on), str(port)) for w in test[1:]]
    if words[0] == "python":
        words[0] = sys.executable
    return subprocess.run(words, capture_output=True, timeout=30, check=False).returncode


def test_anvil_check_passes_on_anvil_and_fails_without_it(compose: dict[str, Any]) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")  # the toolchain needs it; ./scripts/bootstrap says so
    test = compose["services"]["anvil"]["healthcheck"]["test"]
    with Anvil() as chain:
        assert _run(test, chain.port, 8545) == 0
        port = chain.port
    assert _run(test, port, 8545) != 0


def test_gateway_check_tells_ready_from_not_ready(
    compose: dict[str, Any], listener: tuple[int, _Status]
) -> None:
    port, status = listener
    test = compose["services"]["gateway"]["healthcheck"]["test"]
    assert _run(test, port, 8000) == 0
    status.code = 503
    assert _run(test, port, 8000) != 0
    assert set(status.paths) == {"/ready"}


def test_besu_check_tells_live_from_not_live(compose: dict[str, Any], listener: tuple[int, _Status]) -> None:
    port, status = listener
    test = compose["services"]["besu-1"]["healthcheck"]["test"]
    assert _run(test, port, 8545) == 0
    status.code = 503
    assert _run(test, port, 8545) != 0
    assert set(status.paths) == {"/liveness"}
