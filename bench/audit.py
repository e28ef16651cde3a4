"""Audit replay speed: events replayed per second on a chain with ≥ 100,000 events.

Builds the history on a fresh anvil (members admitted by the council, enrolled patients,
batches of anchored records, consents, batches of signed disclosures), then times
`careledger.audit.replay.replay` from its first eth_getLogs to the rule-checked state
(signatures recovered, consents checked at their blocks); the cross-check against view
functions is timed separately. Writes bench/results/audit.json.

Run: `.venv/bin/python bench/audit.py` (about 2 minutes; `--small` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from coincurve import PrivateKey
from eth_account import Account
from eth_utils.crypto import keccak

from careledger.audit.replay import events_per_second, replay
from careledger.chain.clients import Disclosure, Ledger, RecordEntry
from careledger.chain.devnet import Devnet, dev_key, start_devnet
from careledger.chain.eip712 import Enrollment, Grant
from careledger.chain.merkle import record_id_of
from careledger.chain.sender import Sender
from careledger.codes import Category, Purpose, Role, mask

ROOT = Path(__file__).resolve().parents[1]
TARGET = 30_000
FAR = 2**40 - 1


def build_history(
    devnet: Devnet, *, patients: int, anchor_batches: int, per_batch: int, log_batches: int, per_log: int
) -> dict[str, int]:
    """Write the history to audit; returns what was written."""
    ledger: Ledger = devnet.ledger
    seats = devnet.council()
    clinic, relayer, insurer = (
        ledger.sender(dev_key(10)),
        ledger.sender(dev_key(15)),
        ledger.sender(dev_key(12)),
    )
    for member, role in ((clinic, Role.CLINIC), (insurer, Role.INSURER)):
        proposal = ledger.members.propose_admit(
            seats[0], member.address, role, role.name, "http://127.0.0.1:1"
        )
        ledger.members.vote(seats[1], proposal)
    ledger.members.set_relayer(clinic, relayer.address)
    signer = Account.create()
    ledger.members.add_signer(insurer, signer.address)
    people = [Account.create() for _ in range(patients)]
    now = int(time.time())
    consent_of: dict[str, bytes] = {}
    for n, p in enumerate(people):
        e = Enrollment(p.address, clinic.address, keccak(n.to_bytes(8, "big")), 1, FAR)
        ledger.records.enroll_by_sig(relayer, e, e.sign(p.key, ledger.record_domain))
        g = Grant(
            p.address,
            insurer.address,
            mask([Category.CLAIMS]),
            mask([Purpose.HPAYMT]),
            now - 3600,
            now + 86400 * 365,
            2,
            FAR,
        )
        consent_of[p.address] = ledger.consents.grant_by_sig(
            relayer, g, g.sign(p.key, ledger.consent_domain)
        ).consent_id
    # Anchoring and reading interleave, as they do in a running network.
    claims: list[tuple[bytes, str]] = []
    key = PrivateKey(bytes(signer.key))
    logs_per_anchor = log_batches / anchor_batches
    logged = 0
    for a in range(anchor_batches):
        entries = [
            RecordEntry(people[i % patients].address, int(Category.CLAIMS), os.urandom(32))
            for i in range(per_batch)
        ]
        _send(relayer, "RecordRegistry", ledger.records.address, ledger.records.anchor_data(entries))
        claims.extend((record_id_of(clinic.address, e.patient, e.commitment), e.patient) for e in entries)
        while logged < round((a + 1) * logs_per_anchor):
            entries_ = _disclosures(ledger, key, signer.address, claims, consent_of, logged, per_log)
            _send(relayer, "AccessLog", ledger.access.address, ledger.access.log_data(entries_))
            logged += 1
    return {"patients": patients, "records": anchor_batches * per_batch, "disclosures": log_batches * per_log}


def web3_baseline(devnet: Devnet, at_least: int) -> dict[str, Any]:
    """The naive reader: web3.py's get_logs with its per-event ABI decoding, over the first
    blocks of the same history until `at_least` events are decoded."""
    ledger = devnet.ledger
    contracts = [ledger.records.contract, ledger.access.contract, ledger.consents.contract]
    head = ledger.block_number()
    start = ledger.deployment.deployment_block
    events, began = 0, time.perf_counter()
    while events < at_least and start <= head:
        end = min(head, start + 4)
        for contract in contracts:
            for event in contract.all_events():
                events += len(event.get_logs(from_block=start, to_block=end))
        start = end + 1
    elapsed = time.perf_counter() - began
    return {"events_per_s": round(events / elapsed) if elapsed else 0, "events": events,
            "seconds": round(elapsed, 3), "how": "web3.py Contract.events.<Event>.get_logs"}  # fmt: skip


def _send(sender: Sender, contract: str, to: str, data: bytes) -> None:
    """One transaction with pre-encoded calldata, waited for (web3's contract-function path
    spends about a second encoding each 1,000-entry batch)."""
    signed = sender.sign_data(contract, to, data)
    sender.broadcast(contract, signed)
    deadline = time.monotonic() + 60
    while (receipt := sender.receipt(signed.tx_hash)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{contract} transaction not mined")
        time.sleep(0.01)
    if receipt["status"] != 1:
        raise RuntimeError(f"{contract} transaction reverted")


def _disclosures(
    ledger: Ledger,
    key: PrivateKey,
    requester: str,
    claims: list[tuple[bytes, str]],
    consent_of: dict[str, bytes],
    batch: int,
    size: int,
) -> list[Disclosure]:
    checked = ledger.block_number()
    out = []
    for i in range(size):
        record_id, patient = claims[(batch * size + i) % len(claims)]
        request_hash = keccak(os.urandom(32))
        rs_recid = key.sign_recoverable(request_hash, hasher=None)
        signature = rs_recid[:64] + bytes([27 + rs_recid[64]])
        out.append(
            Disclosure(
                record_id,
                requester,
                int(Purpose.HPAYMT),
                False,
                checked,
                consent_of[patient],
                request_hash,
                signature,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="a smoke run of a few hundred events")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit.json")
    args = parser.parse_args()
    print(json.dumps(run(small=args.small, out=args.out), indent=2))


def run(*, small: bool, out: Path) -> dict[str, Any]:
    sizes = (
        dict(patients=5, anchor_batches=2, per_batch=50, log_batches=2, per_log=40)
        if small
        else dict(patients=100, anchor_batches=60, per_batch=1000, log_batches=80, per_log=500)
    )
    devnet = start_devnet()
    try:
        started = time.perf_counter()
        written = build_history(devnet, **sizes)
        setup_s = time.perf_counter() - started
        report = replay(devnet.anvil.url, devnet.deployment, ledger=devnet.ledger)
        baseline = web3_baseline(devnet, 500 if small else 5_000)
        result = {
            "replay_events_per_s": round(events_per_second(report)),
            "baseline_events_per_s": baseline["events_per_s"],
            "baseline": baseline,
            "events": report.events,
            "replay_s": round(report.timings["replay_s"], 3),
            "cross_check_s": round(report.timings["cross_check_s"], 3),
            "findings": len(report.findings),
            "target_events_per_s": TARGET,
            "written": written,
            "setup_s": round(setup_s, 1),
            "machine": {"cores": os.cpu_count(), "cpu": _cpu(), "python": platform.python_version()},
            "anvil": devnet.ledger.w3.client_version,
            "mining": "automine",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    finally:
        devnet.anvil.stop()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
