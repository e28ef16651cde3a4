"""Reading the four contracts' events fast: raw eth_getLogs in block chunks, decoded by hand.

web3.py's per-event decoding manages about 6,500 events/s here; the events CareLedger emits
in volume (records, disclosures, consents) have static fields only, so they are decoded by
slicing 32-byte words out of the hex. The rare ones with strings use eth_abi. Addresses
stay lower-case hex inside the audit (checksumming costs a keccak each).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

from careledger import errors
from careledger.chain.deployment import Deployment


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    block: int
    tx: str
    index: int  # log index in its block
    args: dict[str, Any]


def _topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + kind[5:]
    return kind


class Decoder:
    """topic0 → a decoder for every event in the deployment's ABIs."""

    def __init__(self, deployment: Deployment) -> None:
        self._by_topic: dict[str, tuple[str, Callable[[list[str], str], dict[str, Any]]]] = {}
        for contract in deployment.contracts.values():
            for item in contract.abi:
                if item.get("type") == "event":
                    types = [_abi_type(i) for i in item["inputs"]]
                    topic = _topic(f"{item['name']}({','.join(types)})")
                    self._by_topic[topic] = (item["name"], _decoder(item["inputs"]))

    def decode(self, log: dict[str, Any]) -> Event | None:
        topics: list[str] = log["topics"]
        known = self._by_topic.get(topics[0]) if topics else None
        if known is None:
            return None
        name, decode = known
        return Event(
            name,
            int(log["blockNumber"], 16),
            log["transactionHash"],
            int(log["logIndex"], 16),
            decode(topics, log["data"]),
        )


def _decoder(inputs: list[dict[str, Any]]) -> Callable[[list[str], str], dict[str, Any]]:
    indexed = [(i["name"], i["type"]) for i in inputs if i["indexed"]]
    plain = [(i["name"], _abi_type(i)) for i in inputs if not i["indexed"]]
    if all(t in _WORD for _, t in plain):
        return _compiled(indexed, plain)

    def decode(topics: list[str], data: str) -> dict[str, Any]:
        args = {name: _WORD[kind](topics[n + 1][2:]) for n, (name, kind) in enumerate(indexed)}
        values = abi_decode([t for _, t in plain], bytes.fromhex(data[2:]))
        for (name, kind), value in zip(plain, values, strict=True):
            args[name] = value.lower() if kind == "address" else value
        return args

    return decode


def _compiled(
    indexed: list[tuple[str, str]], plain: list[tuple[str, str]]
) -> Callable[[list[str], str], Any]:
    """A decoder for an event of static fields, written out as one dict display: the hot path
    of a replay (a generic loop over fields costs about twice as much per event)."""
    fields = [f"{name!r}: {_slice(kind, f'topics[{n + 1}]', 2)}" for n, (name, kind) in enumerate(indexed)]
    fields += [f"{name!r}: {_slice(kind, 'data', 2 + 64 * n)}" for n, (name, kind) in enumerate(plain)]
    source = f"def decode(topics, data):\n    return {{{', '.join(fields)}}}\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<event decoder>", "exec"), namespace)  # noqa: S102 - built from the ABI only
    return namespace["decode"]  # type: ignore[no-any-return]


def _slice(kind: str, source: str, start: int) -> str:
    """Python expression reading one ABI word of `kind` from hex string `source` at `start`
    (nodes answer lower-case hex, so no case folding is needed)."""
    end = start + 64
    if kind == "address":
        return f"'0x' + {source}[{start + 24}:{end}]"
    if kind == "bytes32":
        return f"'0x' + {source}[{start}:{end}]"
    if kind == "bool":
        return f"{source}[{start}:{end}] != {'0' * 64!r}"
    return f"int({source}[{start}:{end}], 16)"


def _address(word: str) -> str:
    return "0x" + word[24:].lower()


def _uint(word: str) -> int:
    return int(word, 16)


def _bytes32(word: str) -> str:
    return "0x" + word.lower()


def _bool(word: str) -> bool:
    return int(word, 16) != 0


_WORD: dict[str, Callable[[str], Any]] = {
    "address": _address,
    "bytes32": _bytes32,
    "bool": _bool,
    **{f"uint{n}": _uint for n in range(8, 257, 8)},
}


class LogReader:
    """Every log of the deployment's contracts, in chain order, fetched in block chunks.

    With a cache directory, fetched chunks are kept as JSON files, so an interrupted
    replay resumes where it stopped and a repeated one reads from disk.
    """

    def __init__(
        self,
        rpc_url: str,
        deployment: Deployment,
        *,
        chunk: int = 200,
        cache: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.rpc_url = rpc_url
        self.addresses = [c.address.lower() for c in deployment.contracts.values()]
        self.chunk = chunk
        self.cache = cache
        self._http = httpx.Client(timeout=timeout)
        self._id = 0

    def close(self) -> None:
        self._http.close()

    def rpc(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        body = orjson.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        try:
            answer = orjson.loads(
                self._http.post(
                    self.rpc_url, content=body, headers={"content-type": "application/json"}
                ).content
            )
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            raise errors.ChainUnavailable(f"no JSON-RPC answer from {self.rpc_url}: {exc}") from None
        if "error" in answer:
            raise errors.ChainError(f"{method}: {answer['error'].get('message', answer['error'])}")
        return answer["result"]

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber", []), 16)

    def prefetched(self, start: int, end: int) -> Iterator[tuple[int, int, list[dict[str, Any]]]]:
        """As `chunks`, with the next chunk fetched in a thread while the caller works on this one
        (the node serves eth_getLogs on the other core)."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            chunks = self.chunks(start, end)
            pending = pool.submit(next, chunks, None)
            while (item := pending.result()) is not None:
                pending = pool.submit(next, chunks, None)
                yield item

    def chunks(self, start: int, end: int) -> Iterator[tuple[int, int, list[dict[str, Any]]]]:
        """(from, to, logs) per chunk of blocks, halving a chunk the node refuses as too large."""
        block, size = start, self.chunk
        while block <= end:
            last = min(block + size - 1, end)
            try:
                logs = self._cached_logs(block, last)
            except errors.ChainError:
                if size == 1:
                    raise
                size = max(1, size // 2)
                continue
            yield block, last, logs
            block = last + 1

    def _cached_logs(self, start: int, end: int) -> list[dict[str, Any]]:
        path = self.cache / f"logs-{start}-{end}.json" if self.cache else None
        if path is not None and path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        logs: list[dict[str, Any]] = self.rpc(
            "eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), "address": self.addresses}]
        )
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(logs))
            tmp.replace(path)
        return logs

    def timestamps(self, blocks: set[int]) -> dict[int, int]:
        """Block timestamps, fetched with JSON-RPC batches of 200."""
        found: dict[int, int] = {}
        ordered = sorted(blocks)
        for start in range(0, len(ordered), 200):
            batch = [
                {"jsonrpc": "2.0", "id": n, "method": "eth_getBlockByNumber", "params": [hex(b), False]}
                for n, b in enumerate(ordered[start : start + 200])
            ]
            try:
                answers = self._http.post(self.rpc_url, json=batch).json()
            except (httpx.HTTPError, ValueError) as exc:
                raise errors.ChainUnavailable(f"no JSON-RPC answer from {self.rpc_url}: {exc}") from None
            for answer in answers:
                block = answer.get("result")
                if block:
                    found[int(block["number"], 16)] = int(block["timestamp"], 16)
        return found
