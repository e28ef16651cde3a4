"""One custodian's gateway: its store, chain view, keys and relayer, built from Settings."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_utils.address import is_address, to_checksum_address

from careledger.auth.signatures import origin_of
from careledger.chain.clients import Ledger
from careledger.chain.deployment import Deployment
from careledger.codes import MemberStatus, Role
from careledger.config import Settings
from careledger.crypto.keyfile import KeyRing, load_key_file, load_private_key
from careledger.errors import ConfigurationError
from careledger.services import fhir
from careledger.services.relayer import Relayer
from careledger.store.db import Database
from careledger.store.group_commit import GroupCommit
from careledger.store.migrate import upgrade


@dataclass
class Gateway:
    settings: Settings
    db: Database
    ledger: Ledger
    custodian: str
    kek: KeyRing
    clock: Callable[[], float] = time.time
    random_bytes: Callable[[int], bytes] = os.urandom
    relayer: Relayer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        # nonces and disclosures of concurrent requests, committed together
        self.commits = GroupCommit(self.db)

    def start_relayer(self) -> None:
        """Run the relayer in a background thread (it sends only while it holds the lease)."""
        if self.relayer is None or self._thread is not None:
            return
        self.relayer.housekeeping = self._rotate_if_requested
        self._thread = threading.Thread(
            target=self.relayer.run, args=(self._stop,), name="relayer", daemon=True
        )
        self._thread.start()

    def _rotate_if_requested(self) -> bool:
        from careledger.services import keys  # keys needs Gateway for typing only

        if not keys.rotation_requested(self):
            return False
        keys.rotate(self)
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.commits.close()
        self.db.dispose()


LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def _check_endpoint_scheme(endpoint: str) -> None:
    """https in production; plain http only on loopback (DESIGN.md)."""
    scheme, _, authority = origin_of(endpoint).partition("://")
    host = authority.split("]")[0] + "]" if authority.startswith("[") else authority.rsplit(":", 1)[0]
    if scheme == "https" or (scheme == "http" and host in LOOPBACK):
        return
    raise ConfigurationError(f"endpoint {endpoint!r} must be https (plain http only on loopback)")


# py_ecc (imported by eth-account) raises the recursion limit to 100,000 when imported. With
# that, json.loads of a body nested ~100,000 deep overflows the C stack and kills the gateway
# (SIGSEGV) while FastAPI parses it, before any check; Python's default makes it a RecursionError.
PYTHON_RECURSION_LIMIT = 1000


def bound_recursion() -> None:
    """Put Python's default recursion limit back, so deep input fails as an error, not a crash."""
    sys.setrecursionlimit(min(sys.getrecursionlimit(), PYTHON_RECURSION_LIMIT))


def prepare_to_serve() -> None:
    """Once, before a serving process's first request: the FHIR pre-check built (not on the
    first record), then everything alive — modules, models, ABIs, the pre-check — moved out of
    the cyclic collector's sight, so that a full collection no longer walks ~100 MB of what
    lives as long as the process (built after the freeze, the pre-check cost reads 17 %)."""
    fhir.prepare()
    gc.collect()
    gc.freeze()


def build_gateway(settings: Settings, *, migrate: bool = True) -> Gateway:
    """Connect everything a gateway needs, refusing a configuration that cannot work."""
    bound_recursion()
    if not is_address(settings.member_address):
        raise ConfigurationError("CARELEDGER_MEMBER_ADDRESS must be this custodian's member address")
    if not settings.endpoint:
        raise ConfigurationError("CARELEDGER_ENDPOINT must be this gateway's registered endpoint URL")
    custodian = to_checksum_address(settings.member_address)
    _check_endpoint_scheme(settings.endpoint)
    if migrate:
        upgrade(settings.database_url)
    db = Database(settings.database_url)
    ledger = Ledger.connect(
        settings.rpc_url, Deployment.load(settings.deployment_file), timeout=settings.rpc_timeout_s
    )
    ledger.head_max_age_s = settings.head_max_age_s
    member = ledger.members.get_member(custodian)
    if member.status is MemberStatus.NONE or member.role is not Role.CLINIC:
        raise ConfigurationError(f"{custodian} is not a CLINIC member of this network")
    if origin_of(member.endpoint) != origin_of(settings.endpoint):
        raise ConfigurationError(
            f"{custodian} is registered at {member.endpoint!r}, but this gateway is set to "
            f"{settings.endpoint!r}: requests are signed for the registered endpoint"
        )
    kek = load_key_file(settings.kek_file)
    relayer = None
    if settings.relayer_enabled:
        sender = ledger.sender(load_private_key(settings.relayer_key_file))
        acts_for, _ = ledger.members.active_sender(sender.address)
        if acts_for is not None and acts_for != custodian:
            raise ConfigurationError(f"relayer key {sender.address} acts for another member ({acts_for})")
        relayer = Relayer(db, ledger, sender, custodian, settings)
    return Gateway(settings, db, ledger, custodian, kek, relayer=relayer)


def new_private_key_file(path: Path) -> str:
    """Write a fresh private key (owner-readable only); returns its address."""
    account = Account.create()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(account.key.hex() + "\n")
    return str(account.address)
