"""`careledger dev`: a whole demo cluster in one command, on loopback, until Ctrl-C.

anvil and the contracts; the council (anvil dev accounts #1-#3, 2 of 3) admits Clinic A,
Clinic B, an insurer and an auditor; each clinic's gateway runs on SQLite in its own process;
and a demo patient is seeded — a keystore, a pseudonym enrolled at Clinic A, the fixture
transaction Bundle stored and anchored there, and a consent letting the insurer read claims
for payment. Everything lands in `--directory`: the deployment, members' key files, the
patient's keystore, the gateways' stores and logs, and `env`, which points the CLI at it.
Ctrl-C (or SIGTERM) stops the gateways, then anvil; nothing is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from eth_utils.crypto import keccak
from rich.table import Table

from careledger import errors
from careledger.chain.anvil import free_port
from careledger.chain.devnet import COUNCIL_INDEXES, Devnet, dev_key, start_devnet
from careledger.chain.eip712 import Grant
from careledger.cli.output import console, friendly
from careledger.client import CareLedgerClient
from careledger.codes import Category, Purpose, Role, mask
from careledger.crypto.keyfile import create_key_file
from careledger.crypto.keystore import PatientKeystore

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "fhir"
DEMO_PASSPHRASE = "demo passphrase"  # noqa: S105 -- the demo patient's, printed: it is a demo
DEMO_SEED = bytes(keccak(b"careledger demo patient"))  # fixed, so the walkthrough's output is too
DEMO_REFERENCE = "Patient/example"  # the fixture Bundle's patient


@dataclass(frozen=True)
class DemoMember:
    slug: str
    name: str
    role: Role
    dev_index: int
    relayer_index: int | None = None  # clinics run a gateway; their relayer key sends for them


CLINIC_A = DemoMember("clinic-a", "Clinic A", Role.CLINIC, 10, 15)
CLINIC_B = DemoMember("clinic-b", "Clinic B", Role.CLINIC, 11, 16)
INSURER = DemoMember("insurer", "Insurer", Role.INSURER, 12)
AUDITOR = DemoMember("auditor", "Audit Office", Role.AUDITOR, 14)
MEMBERS = (CLINIC_A, CLINIC_B, INSURER, AUDITOR)
RESEARCH_INDEX = 13  # a research institute's key, for the walkthrough to admit by vote


@friendly
def dev(
    anvil_port: Annotated[int, typer.Option(help="anvil's port (0: a free one).")] = 8545,
    gateway_port: Annotated[int, typer.Option(help="Clinic A's gateway port (0: a free one).")] = 8001,
    clinic_b_port: Annotated[int, typer.Option(help="Clinic B's gateway port (0: a free one).")] = 8002,
    directory: Annotated[
        Path, typer.Option(help="Where the dev network keeps its files (wiped at start).")
    ] = Path(".careledger/dev"),
    seed: Annotated[bool, typer.Option(help="Seed the demo patient, records and consent.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON line.")] = False,
) -> None:
    """The demo cluster: anvil, contracts, members admitted by the council, two clinics' gateways,
    a demo patient with records and a consent. Ctrl-C stops everything."""
    shutil.rmtree(directory, ignore_errors=True)  # the chain is new every run; so are the stores
    (directory / "keys").mkdir(parents=True)
    directory = directory.resolve()
    ports = {CLINIC_A.slug: gateway_port or free_port(), CLINIC_B.slug: clinic_b_port or free_port()}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    gateways: list[subprocess.Popen[bytes]] = []
    with console.status("starting anvil and deploying the contracts…", spinner="dots"):
        devnet = start_devnet(port=anvil_port or None)
    try:
        endpoints = {slug: f"http://127.0.0.1:{port}" for slug, port in ports.items()}
        deployment = directory / "deployment.json"
        with console.status("admitting the members, starting the clinics' gateways…", spinner="dots"):
            _admit(devnet, endpoints)
            _write_keys(directory / "keys")
            devnet.deployment.save(deployment)
            for member in (CLINIC_A, CLINIC_B):
                gateways.append(_serve(devnet, member, endpoints[member.slug], directory))
            for member in (CLINIC_A, CLINIC_B):
                _wait_ready(endpoints[member.slug], directory / f"{member.slug}.log")
        keystore = directory / "patient.json"
        PatientKeystore.create(keystore, DEMO_PASSPHRASE, seed=DEMO_SEED)
        if seed:
            with console.status("seeding the demo patient…", spinner="dots"):
                _seed(devnet, keystore, endpoints[CLINIC_A.slug])
        _write_env(directory, devnet.anvil.url, deployment, keystore)
        summary = _summary(devnet, directory, endpoints)
        if as_json:
            print(json.dumps(summary), flush=True)
        else:
            _print(summary)
        while not stop.wait(0.5):
            for process in gateways:
                if process.poll() is not None:
                    raise errors.ConfigurationError(
                        f"a gateway exited ({process.returncode}); see the logs in {directory}"
                    )
    except KeyboardInterrupt:
        pass
    finally:
        for process in gateways:
            _stop(process)
        devnet.anvil.stop()


def _admit(devnet: Devnet, endpoints: dict[str, str]) -> None:
    ledger, seats = devnet.ledger, devnet.council()
    for member in MEMBERS:
        sender = ledger.sender(dev_key(member.dev_index))
        endpoint = endpoints.get(member.slug, "")
        proposal = ledger.members.propose_admit(seats[0], sender.address, member.role, member.name, endpoint)
        ledger.members.vote(seats[1], proposal)
        if member.relayer_index is not None:
            ledger.members.set_relayer(sender, ledger.sender(dev_key(member.relayer_index)).address)


def _write_keys(folder: Path) -> None:
    """The demo's member keys, as the CLI's --key-file reads them (anvil's published dev keys)."""
    keys = {f"council-{n}": i for n, i in enumerate(COUNCIL_INDEXES, 1)}
    keys |= {m.slug: m.dev_index for m in MEMBERS} | {"research": RESEARCH_INDEX}
    for slug, index in keys.items():
        path = folder / f"{slug}.key"
        path.write_text(dev_key(index).hex() + "\n")
        path.chmod(0o600)


def _serve(devnet: Devnet, member: DemoMember, endpoint: str, directory: Path) -> subprocess.Popen[bytes]:
    assert member.relayer_index is not None
    home = directory / member.slug
    home.mkdir()
    create_key_file(home / "kek.hex")
    relayer = home / "relayer.key"
    relayer.write_text(dev_key(member.relayer_index).hex())
    relayer.chmod(0o600)
    env = {
        **os.environ,
        "CARELEDGER_RPC_URL": devnet.anvil.url,
        "CARELEDGER_DEPLOYMENT_FILE": str(directory / "deployment.json"),
        "CARELEDGER_MEMBER_ADDRESS": devnet.ledger.sender(dev_key(member.dev_index)).address,
        "CARELEDGER_ENDPOINT": endpoint,
        "CARELEDGER_DATABASE_URL": f"sqlite:///{home / 'gateway.db'}",
        "CARELEDGER_KEK_FILE": str(home / "kek.hex"),
        "CARELEDGER_RELAYER_KEY_FILE": str(relayer),
    }
    port = endpoint.rsplit(":", 1)[1]
    command = [sys.executable, "-m", "careledger.cli.main", "gateway", "serve", "--port", port]
    with (directory / f"{member.slug}.log").open("ab") as log:
        # its own process group: the terminal's Ctrl-C reaches this process, which stops it in order
        return subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_ready(url: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = httpx.get(f"{url}/ready", timeout=2).json()
            if state.get("ready") and state.get("relayer", {}).get("holdsLease"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise errors.ConfigurationError(f"the gateway at {url} did not get ready; see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _seed(devnet: Devnet, keystore: Path, gateway: str) -> None:
    """The demo patient at Clinic A: enrolled, the fixture Bundle anchored, claims shared with the insurer."""
    ledger = devnet.ledger
    keys = PatientKeystore.unlock(keystore, DEMO_PASSPHRASE)
    clinic = ledger.sender(dev_key(CLINIC_A.dev_index)).address
    keys.use(clinic)
    patient = CareLedgerClient(keys.key(ledger.deployment.chain_id, clinic), ledger)
    staff = CareLedgerClient(dev_key(CLINIC_A.dev_index), ledger)
    offer = staff.start_enrollment(gateway, patient.address, DEMO_REFERENCE)
    patient.complete_enrollment(gateway, offer["typedData"])
    staff.post_fhir(gateway, json.loads((FIXTURES / "transaction-bundle.json").read_text()))
    deadline = time.monotonic() + 60
    while {r["status"] for r in patient.records(gateway)} != {"anchored"}:
        if time.monotonic() > deadline:
            raise errors.ChainError("the demo records were not anchored within 60 s")
        time.sleep(0.2)
    now = int(time.time())
    insurer = ledger.sender(dev_key(INSURER.dev_index)).address
    grant = Grant(
        patient.address,
        insurer,
        mask([Category.CLAIMS]),
        mask([Purpose.HPAYMT]),
        now - 60,
        now + 365 * 86400,
        1,
        now + 600,
    )
    patient.grant(gateway, grant)


def _write_env(directory: Path, rpc_url: str, deployment: Path, keystore: Path) -> None:
    """`source <directory>/env`: the CLI then talks to this network as the demo patient by default."""
    bin_dir = Path(sys.executable).parent
    lines = [
        "# written by `careledger dev`: source it in another terminal",
        f"export CARELEDGER_RPC_URL={rpc_url}",
        f"export CARELEDGER_DEPLOYMENT_FILE={deployment}",
        f"export CARELEDGER_KEYSTORE={keystore}",
        f"export CARELEDGER_PASSPHRASE='{DEMO_PASSPHRASE}'",
        f'export PATH="{bin_dir}:$PATH"',
    ]
    (directory / "env").write_text("\n".join(lines) + "\n")


def _summary(devnet: Devnet, directory: Path, endpoints: dict[str, str]) -> dict[str, Any]:
    address = {m.slug: devnet.ledger.sender(dev_key(m.dev_index)).address for m in MEMBERS}
    return {
        "rpcUrl": devnet.anvil.url,
        "gatewayUrl": endpoints[CLINIC_A.slug],
        "gateways": {m.name: endpoints[m.slug] for m in (CLINIC_A, CLINIC_B)},
        "deploymentFile": str(directory / "deployment.json"),
        "directory": str(directory),
        "clinic": address[CLINIC_A.slug],
        "members": {m.name: address[m.slug] for m in MEMBERS},
        "research": devnet.ledger.sender(dev_key(RESEARCH_INDEX)).address,
        "keystore": str(directory / "patient.json"),
        "contracts": {name: c.address for name, c in devnet.deployment.contracts.items()},
    }


def _print(summary: dict[str, Any]) -> None:
    table = Table(title="CareLedger demo cluster", header_style="bold")
    table.add_column("what")
    table.add_column("where")
    table.add_row("chain (anvil)", str(summary["rpcUrl"]))
    for name, url in summary["gateways"].items():
        table.add_row(f"{name}'s gateway", url)
    for name, address in summary["members"].items():
        table.add_row(name, address)
    table.add_row("member keys", f"{summary['directory']}/keys/")
    table.add_row("not yet a member", f"{summary['research']} (Research Institute; keys/research.key)")
    table.add_row("demo patient", f"{summary['keystore']} (passphrase '{DEMO_PASSPHRASE}')")
    console.print(table)
    console.print(f"API docs: {summary['gatewayUrl']}/docs")
    console.print(f"In another terminal:  source {summary['directory']}/env")
    console.print("  careledger council members")
    console.print('  careledger patient records --custodian "Clinic A"')
    console.print("  careledger patient history")
    console.print("Ctrl-C stops everything.")
