"""A lean HTTP/1.1 load generator: pre-encoded requests over keep-alive connections.

The gateway, anvil and the load generator share two cores, so every microsecond the
generator spends is taken from what it measures. aiohttp costs a few hundred microseconds
of CPU per request; here a request is one pre-built bytes object written to a socket and
an answer is a status line, headers up to Content-Length and the body, read with uvloop's
streams (tens of microseconds). It speaks only what the gateway answers: HTTP/1.1 with
Content-Length (no chunked bodies), keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

try:  # uvloop comes with uvicorn[standard]; plain asyncio works too, only slower
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


@dataclass(frozen=True)
class Prepared:
    """A signed request, ready to send."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""

    def wire(self) -> bytes:
        """The request as it goes on the wire (keep-alive, Content-Length always)."""
        parts = urlsplit(self.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{self.method} {target} HTTP/1.1", f"host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines.append(f"content-length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class Outcome:
    started: float  # time.time() when sent (or when scheduled, in an open loop)
    finished: float
    status: int  # 0: no answer (connection failed or timed out)
    body: bytes = b""

    @property
    def latency(self) -> float:
        return self.finished - self.started


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, wire: bytes) -> tuple[int, bytes]:
        self.writer.write(wire)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                close = True
            elif lowered == b"transfer-encoding":
                raise ValueError("chunked answers are not supported by this load generator")
        body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def _send(
    conn: _Connection | None, host: str, port: int, wire: bytes, timeout_s: float
) -> tuple[_Connection | None, int, bytes]:
    """One request on `conn` (a new connection if none is open); the connection to use next
    (None after a failure), the status (0: no answer) and the body."""
    try:
        if conn is None or conn.closed:
            conn = await _Connection.open(host, port)
        status, body = await asyncio.wait_for(conn.exchange(wire), timeout_s)
        return conn, status, body
    except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
        if conn is not None:
            conn.close()
        return None, 0, b""


def _targets(requests: Sequence[Prepared]) -> tuple[str, int, list[bytes]]:
    """Where the requests go (they all go to one gateway), and each as it goes on the wire."""
    parts = urlsplit(requests[0].url)
    return parts.hostname or "127.0.0.1", parts.port or 80, [p.wire() for p in requests]


def _run(coro: Any) -> Any:
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


def closed_loop(
    requests: Sequence[Prepared],
    concurrency: int,
    duration: float,
    *,
    keep_body: bool = False,
    timeout_s: float = 60.0,
) -> list[Outcome]:
    """`concurrency` clients, each on its own connection sending the next request as soon
    as its last is answered, until the requests or `duration` seconds run out."""
    if not requests:
        return []
    host, port, wires = _targets(requests)

    async def run() -> list[Outcome]:
        outcomes: list[Outcome] = []
        queue = iter(wires)
        stop_at = time.monotonic() + duration

        async def client() -> None:
            conn: _Connection | None = None
            try:
                while time.monotonic() < stop_at:
                    wire = next(queue, None)
                    if wire is None:
                        return
                    t0 = time.time()
                    conn, status, body = await _send(conn, host, port, wire, timeout_s)
                    outcomes.append(Outcome(t0, time.time(), status, body if keep_body else b""))
            finally:
                if conn is not None:
                    conn.close()

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return outcomes

    result: list[Outcome] = _run(run())
    return result


def open_loop(
    requests: Sequence[Prepared], rate: float, *, timeout_s: float = 5.0, max_connections: int = 512
) -> list[Outcome]:
    """Send requests at a fixed arrival rate whatever the answers; latency counts from each
    request's scheduled time (no coordinated omission). Idle connections are reused, new
    ones opened while all are busy (up to `max_connections`; a request that finds none
    waits, its wait counted). An answer later than `timeout_s` counts as failed (status 0)."""
    if not requests:
        return []
    host, port, wires = _targets(requests)

    async def run() -> list[Outcome]:
        outcomes: list[Outcome] = []
        idle: list[_Connection] = []
        slots = asyncio.Semaphore(max_connections)

        async def one(wire: bytes, scheduled: float) -> None:
            async with slots:
                conn, status, _ = await _send(idle.pop() if idle else None, host, port, wire, timeout_s)
                outcomes.append(Outcome(scheduled, time.time(), status))
                if conn is not None and not conn.closed:
                    idle.append(conn)

        loop = asyncio.get_running_loop()
        t0_wall, t0 = time.time(), loop.time()
        tasks = []
        for i, wire in enumerate(wires):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(wire, t0_wall + i / rate)))
        await asyncio.gather(*tasks)
        for conn in idle:
            conn.close()
        return outcomes

    result: list[Outcome] = _run(run())
    return result
