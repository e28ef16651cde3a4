"""Mirror MemberRegistry's allowlist into Besu validators' local account allowlists.

Besu's on-chain permissioning contracts are deprecated (24.12) and removed; its local
account permissioning remains, one allowlist per node, edited at run time with the `PERM`
JSON-RPC methods (`perm_getAccountsAllowlist`, `perm_addAccountsToAllowlist`,
`perm_removeAccountsFromAllowlist`), which Besu also writes back to the node's
permissions file. MemberRegistry.allowlist() is the source of truth: every council seat
and every active member's admin and relayer key. A node's allowlist is made equal to that
set plus the operator's `keep` accounts (e.g. the deployer), nothing more.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_utils.address import is_address, to_checksum_address

from careledger import errors
from careledger.chain.clients import MemberRegistryClient

log = logging.getLogger("careledger.allowlist")

# Besu's answers when the list already holds, or already lacks, an account (RpcErrorType).
EXISTING_ENTRY = "Cannot add an existing account to allowlist"
ABSENT_ENTRY = "Cannot remove an absent account from allowlist"


def normalise(accounts: Iterable[str]) -> set[str]:
    """Checksummed addresses; refuses anything that is not one."""
    out: set[str] = set()
    for account in accounts:
        if not is_address(account):
            raise errors.ConfigurationError(f"{account!r} is not an account address")
        out.add(to_checksum_address(account))
    return out


class PermNode:
    """One Besu node's local account allowlist, over its JSON-RPC `PERM` methods."""

    def __init__(self, url: str, *, timeout: float = 10.0, client: httpx.Client | None = None) -> None:
        self.url = url
        self._client = client or httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def accounts(self) -> set[str]:
        result = self._call("perm_getAccountsAllowlist", [])
        if not isinstance(result, list) or not all(isinstance(a, str) and is_address(a) for a in result):
            raise errors.ChainError(f"{self.url}: perm_getAccountsAllowlist answered {result!r}")
        return normalise(result)

    def add(self, accounts: Sequence[str]) -> None:
        self._edit("perm_addAccountsToAllowlist", accounts, EXISTING_ENTRY)

    def remove(self, accounts: Sequence[str]) -> None:
        self._edit("perm_removeAccountsFromAllowlist", accounts, ABSENT_ENTRY)

    def close(self) -> None:
        self._client.close()

    def _edit(self, method: str, accounts: Sequence[str], already: str) -> None:
        if not accounts:
            return  # Besu refuses an empty list
        try:
            self._call(method, [sorted(accounts)])
        except errors.ChainError as exc:
            if already not in str(exc):
                raise
            # Someone else (another sync, an operator) got there first for some of them:
            # apply the rest one by one, each one idempotent.
            for account in sorted(accounts):
                try:
                    self._call(method, [[account]])
                except errors.ChainError as one:
                    if already not in str(one):
                        raise

    def _call(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise errors.ChainUnavailable(f"{self.url} unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise errors.ChainError(f"{self.url}: {method} answered HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise errors.ChainError(f"{self.url}: {method} answered something other than JSON") from None
        if not isinstance(answer, dict):
            raise errors.ChainError(f"{self.url}: {method} answered {answer!r}")
        if answer.get("error") is not None:
            error = answer["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise errors.ChainError(f"{self.url}: {method} refused: {message}")
        return answer.get("result")


@dataclass(frozen=True)
class NodeSync:
    """What one sync round did to one node."""

    url: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    error: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def desired_allowlist(members: MemberRegistryClient, keep: Iterable[str] = ()) -> set[str]:
    """The accounts every node should allow now: MemberRegistry's allowlist plus `keep`."""
    allowed = normalise(members.allowlist())
    if not allowed:  # it always lists the council's seats: an empty answer is not one to apply
        raise errors.ChainError(f"MemberRegistry at {members.address} lists no account; nodes left alone")
    return allowed | normalise(keep)


def sync_node(node: PermNode, desired: set[str]) -> NodeSync:
    """Make `node`'s allowlist equal to `desired`: add what is missing, then remove the rest.

    Adding first means an account that stays allowed is never briefly refused.
    """
    current = node.accounts()
    to_add = sorted(desired - current)
    to_remove = sorted(current - desired)
    node.add(to_add)
    node.remove(to_remove)
    return NodeSync(node.url, tuple(to_add), tuple(to_remove))


def sync_once(
    members: MemberRegistryClient, nodes: Sequence[PermNode], keep: Iterable[str] = ()
) -> list[NodeSync]:
    """One round: read the chain once, then bring every node in line (a failing node does
    not stop the others; its error is in its NodeSync)."""
    desired = desired_allowlist(members, keep)
    results: list[NodeSync] = []
    for node in nodes:
        try:
            result = sync_node(node, desired)
        except errors.ChainError as exc:
            result = NodeSync(node.url, error=str(exc))
            log.warning("allowlist sync failed", extra={"fields": {"node": node.url, "reason": str(exc)}})
        else:
            if result.changed:
                log.info(
                    "allowlist synced",
                    extra={"fields": {"node": node.url, "added": result.added, "removed": result.removed}},
                )
        results.append(result)
    return results


@dataclass
class AllowlistSync:
    """Rounds of sync_once every `interval_s` until `stop` is set."""

    members: MemberRegistryClient
    nodes: Sequence[PermNode]
    keep: frozenset[str] = frozenset()
    interval_s: float = 5.0
    on_round: Callable[[list[NodeSync]], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                results = sync_once(self.members, self.nodes, self.keep)
            except errors.ChainError as exc:  # the chain itself: try again next round
                log.warning("allowlist source unreadable", extra={"fields": {"reason": str(exc)}})
            else:
                if self.on_round is not None:
                    self.on_round(results)
            self.stop.wait(self.interval_s)
