"""What the benchmark scenarios share: a devnet with the members admitted, a real gateway
process (tests-like: uvicorn via `careledger gateway serve`) on a SQLite file or a throw-away
PostgreSQL database, enrolled patients, pre-signed requests and an asyncio load generator.

Requests are signed before the clock starts (RFC 9421 over the same signature base the
gateway verifies, with coincurve), so the load generator spends its CPU on sending only;
the signatures stay valid for MAX_VALIDITY_S, longer than any timed phase.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from coincurve import PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount

from bench.loadgen import Prepared
from careledger.auth.signatures import (
    FIXED_COMPONENTS,
    LABEL,
    SignatureParams,
    content_digest,
    message_hash,
    signature_base,
)
from careledger.chain.anvil import free_port
from careledger.chain.devnet import Devnet, dev_key, start_devnet
from careledger.chain.sender import Sender
from careledger.client import CareLedgerClient
from careledger.codes import Role
from careledger.crypto.keyfile import create_key_file
from careledger.store.db import Database

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OBSERVATION = ROOT / "tests" / "fixtures" / "fhir" / "r4-examples" / "Observation-f001.json"
PG_ADMIN_URL = os.environ.get("CARELEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
FHIR_JSON = "application/fhir+json"

CLINIC_KEY, INSURER_KEY, RELAYER_KEY = dev_key(10), dev_key(12), dev_key(15)


@dataclass(frozen=True)
class Mode:
    """How anvil mines: on every transaction, or one block a second (closer to QBFT)."""

    name: str
    block_time: float | None


AUTOMINE = Mode("automine", None)
BLOCK_TIME_1 = Mode("block-time-1", 1.0)


# --------------------------------------------------------------------------- environment


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
    }


def speed_gauge() -> float:
    """Milliseconds this machine takes, now, for a fixed pure-Python workload (best of three).

    The virtual machines these runs share have run the same code 2x slower from one session
    to the next and ±40 % within minutes (bench/notes.md): a figure compares with another
    run's only beside this one, taken at the start and end of each cell.
    """
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - began)
    return round(best * 1000, 1)


def versions(devnet: Devnet | None = None) -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for package in ("web3", "fastapi", "uvicorn", "sqlalchemy", "coincurve", "eth-keys", "psycopg"):
        with suppress(Exception):  # a missing optional package is just not listed
            out[package] = version(package)
    solc = ROOT / "node_modules" / "solc" / "package.json"
    if solc.exists():
        out["solc"] = json.loads(solc.read_text())["version"]
    if devnet is not None:
        out["anvil"] = str(devnet.ledger.w3.client_version)
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as c:
            row = c.execute("show server_version").fetchone()
            out["postgresql"] = str(row[0]) if row else "?"
    except psycopg.OperationalError:
        pass
    return out


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """An empty database of `kind` (sqlite file, or a throw-away PostgreSQL database)."""
    if kind == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "gateway.db"
        path.unlink(missing_ok=True)
        yield f"sqlite:///{path}"
        return
    name = f"careledger_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cell:
    """One devnet and one gateway: a (mining mode, database) cell of the results."""

    mode: Mode
    db_kind: str
    devnet: Devnet
    clinic: Sender
    insurer: Sender
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    db: Database
    patients: list[LocalAccount] = field(default_factory=list)

    @property
    def w3(self) -> Any:
        return self.devnet.ledger.w3

    def gateway_processes(self) -> list[psutil.Process]:
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def admit(devnet: Devnet, key: bytes, role: Role, name: str, endpoint: str) -> Sender:
    ledger = devnet.ledger
    council = devnet.council()
    member = ledger.sender(key)
    proposal = ledger.members.propose_admit(council[0], member.address, role, name, endpoint)
    ledger.members.vote(council[1], proposal)
    return member


@contextmanager
def cell(
    mode: Mode, db_kind: str, directory: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[Cell]:
    """A devnet in `mode` with clinic + insurer admitted, and the clinic's gateway serving."""
    directory.mkdir(parents=True, exist_ok=True)
    devnet = start_devnet(block_time=mode.block_time)
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        clinic = admit(devnet, CLINIC_KEY, Role.CLINIC, "clinic", url)
        insurer = admit(devnet, INSURER_KEY, Role.INSURER, "insurer", "")
        devnet.ledger.members.set_relayer(clinic, Account.from_key(RELAYER_KEY).address)
        with database(db_kind, directory / db_kind) as db_url:
            deployment = directory / "deployment.json"
            devnet.deployment.save(deployment)
            kek = directory / "kek.hex"
            kek.unlink(missing_ok=True)
            create_key_file(kek)
            relayer = directory / "relayer.key"
            relayer.write_text(RELAYER_KEY.hex())
            gateway_env = {
                **os.environ,
                "CARELEDGER_RPC_URL": devnet.anvil.url,
                "CARELEDGER_DEPLOYMENT_FILE": str(deployment),
                "CARELEDGER_MEMBER_ADDRESS": clinic.address,
                "CARELEDGER_ENDPOINT": url,
                "CARELEDGER_DATABASE_URL": db_url,
                "CARELEDGER_KEK_FILE": str(kek),
                "CARELEDGER_RELAYER_KEY_FILE": str(relayer),
                "CARELEDGER_WORKERS": str(workers),
                "CARELEDGER_LOG_LEVEL": "WARNING",
                # the largest batches the settings allow; the ages stay the defaults (0.5 s, 0.2 s)
                "CARELEDGER_ANCHOR_BATCH_MAX": "1000",
                "CARELEDGER_LOG_BATCH_MAX": "500",
                **(env or {}),
            }
            log = directory / f"gateway-{mode.name}-{db_kind}.log"
            command = [sys.executable, "-m", "careledger.cli.main", "gateway", "serve", "--port", str(port)]
            with log.open("wb") as out:
                process = subprocess.Popen(command, env=gateway_env, stdout=out, stderr=subprocess.STDOUT)
            db = Database(db_url)
            c = Cell(mode, db_kind, devnet, clinic, insurer, url, process, log, db)
            try:
                _wait_ready(c)
                yield c
            finally:
                db.dispose()
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
    finally:
        devnet.anvil.stop()


def _wait_ready(c: Cell, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.process.poll() is not None:
            raise RuntimeError(f"gateway exited ({c.process.returncode}):\n{c.log.read_text()[-3000:]}")
        try:
            state = httpx.get(f"{c.url}/ready", timeout=2).json()
            if state.get("ready") and state.get("relayer", {}).get("holdsLease"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gateway not ready:\n{c.log.read_text()[-3000:]}")


def enroll_patients(c: Cell, count: int) -> list[LocalAccount]:
    """`count` fresh patients enrolled at the gateway (Patient/bench-<n>), concurrently."""
    staff = CareLedgerClient(CLINIC_KEY, c.devnet.ledger)
    start = len(c.patients)
    people = [Account.create() for _ in range(count)]

    def one(n: int, patient: LocalAccount) -> None:
        offer = staff.start_enrollment(c.url, patient.address, f"Patient/bench-{start + n}")
        result = CareLedgerClient(patient.key, c.devnet.ledger).complete_enrollment(c.url, offer["typedData"])
        if result["status"] != "done":
            raise RuntimeError(f"enrollment not done: {result}")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count), people))
    c.patients.extend(people)
    return people


def reference_of(c: Cell, patient: LocalAccount) -> str:
    return f"Patient/bench-{c.patients.index(patient)}"


# --------------------------------------------------------------------------- signed requests


class FastSigner:
    """The gateway's RFC 9421 profile signed with coincurve directly (the client's sign_request
    goes through eth-account, about ten times slower, which would load the generator)."""

    def __init__(self, private_key: bytes) -> None:
        self._key = PrivateKey(private_key)
        self.keyid = str(Account.from_key(private_key).address)

    def prepare(self, method: str, url: str, body: bytes = b"", content_type: str | None = None) -> Prepared:
        created = int(time.time())
        params = SignatureParams(FIXED_COMPONENTS, created, created + 300, secrets.token_hex(16), self.keyid)
        digest = content_digest(body)
        base = signature_base(method, url, digest, {}, params)
        rs_recid = self._key.sign_recoverable(message_hash(base), hasher=None)
        sig = rs_recid[:64] + bytes([27 + rs_recid[64]])
        headers = {
            "content-digest": digest,
            "signature-input": f"{LABEL}={params.serialize()}",
            "signature": f"{LABEL}=:{base64.b64encode(sig).decode()}:",
        }
        if content_type:
            headers["content-type"] = content_type
        return Prepared(method, url, headers, body)


# --------------------------------------------------------------------------- measuring


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


class RssSampler:
    """Peak resident memory, summed over the gateway's processes, sampled every 0.2 s."""

    def __init__(self, c: Cell) -> None:
        self.c = c
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        total = 0
        for p in self.c.gateway_processes():
            with suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        self.peak_bytes = max(self.peak_bytes, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.2)

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)


def wait_for(predicate: Any, timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


def observation(reference: str, resource_id: str) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads(OBSERVATION.read_text())
    resource["id"] = resource_id
    resource["subject"] = {"reference": reference}
    return resource


def bundle(url: str, reference: str, ids: Sequence[str]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"{url}/fhir/Observation/{i}",
                "resource": observation(reference, i),
                "request": {"method": "PUT", "url": f"Observation/{i}"},
            }
            for i in ids
        ],
    }
