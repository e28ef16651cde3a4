"""Plain JSON-RPC over one keep-alive HTTP connection per thread.

web3.py's request stack (middlewares, formatters, a requests session) costs several times
the call itself; the calls the gateway makes per request or per relayed batch — the head,
eth_call of a static view, estimates, raw transactions, receipts — go through this instead.
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import urlsplit

import orjson

from careledger import errors


class RpcRefused(Exception):
    """The node answered with a JSON-RPC error object (kept whole: a revert carries data)."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error.get('message', error)}")
        self.error = error

    @property
    def revert_data(self) -> bytes:
        data = self.error.get("data")
        if isinstance(data, dict):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                return b""
        return b""


class RawRpc:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._endpoint = urlsplit(url)
        self._timeout = timeout
        self._local = threading.local()
        self._ids = 0

    def call(self, method: str, params: list[Any]) -> Any:
        """The result of one call; ChainUnavailable when the node cannot be reached (after one
        reconnection), RpcRefused when it answers with an error."""
        self._ids += 1
        # json for the request (its integers may pass 64 bits), orjson for the answer (receipts
        # of a thousand logs; JSON-RPC quantities are hex strings)
        body = json.dumps({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}).encode()
        for attempt in range(2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                kind = (
                    http.client.HTTPSConnection
                    if self._endpoint.scheme == "https"
                    else http.client.HTTPConnection
                )
                conn = self._local.conn = kind(self._endpoint.netloc, timeout=self._timeout)
            try:
                conn.request("POST", self._endpoint.path or "/", body, {"Content-Type": "application/json"})
                answer = orjson.loads(conn.getresponse().read())
                break
            except (OSError, http.client.HTTPException, ValueError) as exc:
                conn.close()
                self._local.conn = None
                if attempt:
                    raise errors.ChainUnavailable(f"chain unreachable: {exc}") from None
        if "error" in answer:
            raise RpcRefused(method, answer["error"])
        return answer["result"]

    def ask(self, method: str, params: list[Any]) -> Any:
        """call() for reads that cannot be refused for a reason worth decoding: a refusal is
        ChainUnavailable like an unreachable node."""
        try:
            return self.call(method, params)
        except RpcRefused as exc:
            raise errors.ChainUnavailable(str(exc)) from None
