"""A loopback stand-in for a Besu node's `PERM` account-allowlist methods, and nothing else.

Besu runs only in Docker, which these machines lack, and anvil has no perm_* methods, so
this is the one boundary the allowlist sync is tested against without the real thing.
It answers as Besu 24.12+ does (RpcErrorType messages, "Success" results, lower-case
addresses from perm_getAccountsAllowlist) and records every edit it was asked for.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class FakePermNode:
    def __init__(self, initial: list[str] | None = None) -> None:
        self.accounts: list[str] = [a.lower() for a in initial or []]
        self.calls: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answer = node.handle(body)
                raw = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakePermNode:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        method, params, rid = body["method"], body.get("params", []), body.get("id")
        with self.lock:
            if method == "perm_getAccountsAllowlist":
                return {"jsonrpc": "2.0", "id": rid, "result": list(self.accounts)}
            if method not in ("perm_addAccountsToAllowlist", "perm_removeAccountsFromAllowlist"):
                return _error(rid, -32601, "Method not found")
            accounts = params[0] if params else []
            self.calls.append((method, list(accounts)))
            if not accounts:
                return _error(rid, -32000, "Request contains an empty list of accounts")
            if not all(isinstance(a, str) and ADDRESS.match(a) for a in accounts):
                return _error(rid, -32000, "Request contains an invalid account")
            lowered = [a.lower() for a in accounts]
            if len(set(lowered)) != len(lowered):
                return _error(rid, -32000, "Request contains duplicate accounts")
            if method == "perm_addAccountsToAllowlist":
                if any(a in self.accounts for a in lowered):
                    return _error(rid, -32000, "Cannot add an existing account to allowlist")
                self.accounts.extend(lowered)
            else:
                if any(a not in self.accounts for a in lowered):
                    return _error(rid, -32000, "Cannot remove an absent account from allowlist")
                self.accounts = [a for a in self.accounts if a not in lowered]
            return {"jsonrpc": "2.0", "id": rid, "result": "Success"}


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
