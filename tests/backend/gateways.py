"""Real gateways for tests: uvicorn in its own process, on a free loopback port.

And what the end-to-end and CLI tests do with them: wait for a condition, enroll a patient,
post the fixture bundle and wait for its records to be anchored, run `careledger dev`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from careledger.chain.anvil import free_port
from careledger.chain.devnet import Devnet, dev_key
from careledger.chain.eip712 import Grant
from careledger.chain.sender import Sender
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose, mask
from careledger.config import Settings
from careledger.crypto.keyfile import create_key_file
from tests.backend.support import Cluster

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
# A gateway checks consents and memberships at a head read at most this long before a request
# (CARELEDGER_HEAD_MAX_AGE_S): a change made on chain by someone else is seen within it.
HEAD_MAX_AGE_S = Settings.model_fields["head_max_age_s"].default


def past_head_max_age() -> None:
    """Wait until every head a gateway holds is too old to answer the next request."""
    time.sleep(HEAD_MAX_AGE_S + 0.05)


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
    key = dev_key(dev_index)
    relayer = devnet.ledger.sender(key)
    member, _ = devnet.ledger.members.key_of(relayer.address)
    if member != admin.address:
        devnet.ledger.members.set_relayer(admin, relayer.address)
    return key


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "the condition") -> None:
    """Poll `predicate` every 0.1 s until it holds; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def wait_gateway_ready(url: str, with_relayer: bool = True, timeout: float = 20.0) -> None:
    """Wait until the gateway's /ready says ready (and, `with_relayer`, that its relayer holds the lease)."""

    def ready() -> bool:
        try:
            state = httpx.get(f"{url}/ready", timeout=1).json()
        except httpx.HTTPError:
            return False
        return bool(state["ready"] and (not with_relayer or state["relayer"]["holdsLease"]))

    lease = " with its relayer holding the lease" if with_relayer else ""
    wait_until(ready, timeout, what=f"the gateway at {url} to be ready{lease}")


def dev_command(directory: Path) -> list[str]:
    """`careledger dev` on free ports, printing its JSON summary line first."""
    return [
        sys.executable,
        "-m",
        "careledger.cli.main",
        "dev",
        "--json",
        "--anvil-port",
        "0",
        "--gateway-port",
        "0",
        "--clinic-b-port",
        "0",
        "--directory",
        str(directory),
    ]


@contextmanager
def summarised_process(command: list[str]) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """Run a command whose first stdout line is a JSON summary; killed on the way out if still running."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process, json.loads(process.stdout.readline())
    finally:
        if process.poll() is None:
            process.kill()


def bundle() -> dict[str, Any]:
    """A fresh copy of the fixture transaction bundle: 15 entries for Patient/example."""
    return json.loads((FIXTURES / "transaction-bundle.json").read_text())  # type: ignore[no-any-return]


def observation(reference: str = "Patient/example") -> dict[str, Any]:
    """A fresh copy of the R4 example Observation f001, about the patient `reference`."""
    resource: dict[str, Any] = json.loads((FIXTURES / "r4-examples" / "Observation-f001.json").read_text())
    resource["subject"] = {"reference": reference}
    return resource


def enroll(
    cluster: Cluster,
    url: str,
    patient: LocalAccount,
    reference: str = "Patient/example",
    *,
    staff_key: bytes | None = None,
) -> None:
    """Staff (clinic A's by default) offer the enrollment at `url`; the patient signs it; it is done."""
    staff = CareLedgerClient(dev_key(10) if staff_key is None else staff_key, cluster.ledger)
    offer = staff.start_enrollment(url, patient.address, reference)
    result = CareLedgerClient(patient.key, cluster.ledger).complete_enrollment(url, offer["typedData"])
    assert result["status"] == "done", result


def records_of(cluster: Cluster, url: str, patient: LocalAccount) -> list[dict[str, Any]]:
    """The patient's records at the gateway `url`, as the patient lists them."""
    own = CareLedgerClient(patient.key, cluster.ledger)
    listed: list[dict[str, Any]] = own.call("GET", f"{url}/patients/{patient.address}/records")
    return listed


def wait_anchored(
    cluster: Cluster, url: str, patient: LocalAccount, count: int | None = None, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Wait until every record of the patient (`count` of them, if given) is anchored; return them."""
    listing: list[dict[str, Any]] = []

    def anchored() -> bool:
        listing[:] = records_of(cluster, url, patient)
        return (count is None or len(listing) == count) and {r["status"] for r in listing} == {"anchored"}

    records = "every record" if count is None else f"all {count} records"
    wait_until(anchored, timeout, what=f"{records} of the patient at {url} to be anchored")
    return listing


def consent_grant(
    patient: LocalAccount,
    grantee: str,
    category: Category,
    purpose: Purpose,
    nonce: int = 1,
    *,
    lifetime: int = 86400,
    now: int | None = None,
) -> Grant:
    """The patient's grant of one category for one purpose: valid from a minute ago for `lifetime` s."""
    now = int(time.time()) if now is None else now
    return Grant(
        patient.address,
        grantee,
        mask([category]),
        mask([purpose]),
        now - 60,
        now + lifetime,
        nonce,
        now + 600,
    )
