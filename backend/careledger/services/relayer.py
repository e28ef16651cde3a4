"""The relayer: the one process that sends a gateway's transactions.

Each step it (1) settles the transactions it signed whose nonce the chain has consumed —
mined, reverted or dropped — and broadcasts again any it has not broadcast itself (after a
crash or a lease takeover) or that waited too long, then, while fewer than MAX_IN_FLIGHT
are unmined, (2) relays the next patient-signed jobs, revocations first, (3) anchors
pending records once enough are waiting or the oldest has waited long enough, and (4) logs
pending disclosures the same way. Several transactions are in flight at once (consecutive
nonces of the one relayer key), so with a block time several batches share a block instead
of one batch per block. A transaction is stored before it is broadcast, so a crash anywhere
loses nothing and sends nothing twice. A database lease makes sure that one process does
this, however many API workers run.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from careledger import errors
from careledger.chain import merkle
from careledger.chain.clients import Disclosure, Ledger, RecordEntry, compact_signature
from careledger.chain.eip712 import Enrollment, Erasure, Grant, Revocation
from careledger.chain.sender import Call, Receipt, Sender, SignedTx
from careledger.config import Settings
from careledger.store.db import Database, Session
from careledger.store.models import AnchorBatchRow, ChainTxRow
from careledger.store.repositories import (
    Batches,
    ChainJobs,
    ChainTxs,
    Disclosures,
    Leases,
    Nonces,
    Patients,
    Records,
)

log = logging.getLogger("careledger.relayer")
LEASE = "relayer"
# Revocations first: a patient's "stop" never waits behind anything else.
JOB_PRIORITY = ("revoke", "erase", "grant", "enroll")
# Unmined transactions of the relayer key at once; the work each carries is chosen only once.
MAX_IN_FLIGHT = 16
# An unmined transaction is broadcast again after this long (a node may have dropped it).
REBROADCAST_AFTER_S = 10.0
# A transaction whose nonce the chain has consumed but which has no receipt is taken for
# dropped (another transaction used its nonce) only after this long: anvil, mining on an
# interval, has been seen to count the nonce a moment before it serves the receipt, and a
# transaction wrongly taken for dropped would have its work sent twice (the soak caught it).
DROPPED_AFTER_S = 5.0
# Grants relayed in one grantBatchBySig transaction (the contract takes at most 100).
GRANT_BATCH_MAX = 100
# After a whole batch of grants failed, grants go one per transaction this long.
SINGLE_GRANTS_AFTER_FAILED_BATCH_S = 60.0


@dataclass
class RelayerStats:
    """What /metrics shows about the relayer."""

    holds_lease: bool = False
    txs_sent: int = 0
    records_anchored: int = 0
    disclosures_logged: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    last_error: str | None = None


class Relayer:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        sender: Sender,
        custodian: str,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        holder: str | None = None,
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.sender = sender
        self.custodian = custodian
        self.settings = settings
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.stats = RelayerStats()
        self._retry_after = 0.0
        self._next_purge = 0.0
        self._broadcast_at: dict[int, float] = {}  # tx row id -> when this process broadcast it
        self._no_receipt_since: dict[int, float] = {}  # tx row id -> nonce consumed, no receipt yet
        self._single_grants_until = 0.0
        self._renewed_at = 0.0
        # Work that must run in the one lease-holding process, e.g. a requested KEK rotation.
        self.housekeeping: Callable[[], bool] | None = None

    # ------------------------------------------------------------------ loop

    def run(self, stop: threading.Event, idle: float = 0.05) -> None:
        """Work until `stop` is set; errors are logged and retried after a pause."""
        while not stop.is_set():
            worked = False
            try:
                worked = self.step()
            except errors.CareLedgerError as exc:
                self._backoff(exc)
            if not worked:
                stop.wait(idle)
        self.release()

    def step(self) -> bool:
        """One round of work; True if anything was done."""
        if self.clock() < self._retry_after or not self._hold_lease():
            return False
        in_flight, settled = self._settle()
        if in_flight >= MAX_IN_FLIGHT:
            return settled  # wait for the chain before signing more
        if in_flight and self.housekeeping is not None:
            # housekeeping (a KEK rotation) runs only with nothing in flight, as before
            return self._next_job() or self._anchor_due() or self._log_due() or settled
        return (
            self._next_job()
            or self._anchor_due()
            or self._log_due()
            or self._purge_nonces()
            or (self.housekeeping is not None and self.housekeeping())
            or settled
        )

    def _purge_nonces(self) -> bool:
        """Forget nonces whose signatures expired (at most once a minute); never counts as work."""
        if self.clock() < self._next_purge:
            return False
        self._next_purge = self.clock() + 60
        with self.db.session() as s:
            Nonces(s).purge(int(self.clock()))
        return False

    def drain(self, timeout: float = 30.0) -> None:
        """Step until nothing is left to do (for tests and orderly shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.step() and not self._busy():
                return
        raise errors.TransactionFailed("relayer did not drain in time")

    def release(self) -> None:
        if self.stats.holds_lease:
            with self.db.session() as s:
                Leases(s).release(LEASE, self.holder)
            self.stats.holds_lease = False

    def _busy(self) -> bool:
        with self.db.session() as s:
            return bool(
                Records(s).pending(1)
                or Disclosures(s).pending(1)
                or ChainJobs(s).count_pending()
                or ChainTxs(s).unsettled(self.sender.address)
            )

    def _backoff(self, exc: errors.CareLedgerError) -> None:
        self.stats.last_error = str(exc)
        self._retry_after = self.clock() + 1.0
        log.warning(
            "relayer backing off", extra={"fields": {"error": type(exc).__name__, "detail": str(exc)[:300]}}
        )

    def _hold_lease(self) -> bool:
        now = self.clock()
        if self.stats.holds_lease and 0 <= now - self._renewed_at < self.settings.lease_ttl_s / 4:
            return True  # renewed moments ago: nobody else can hold it before it expires
        now_ms = int(now * 1000)
        with self.db.session() as s:
            held = Leases(s).acquire(LEASE, self.holder, now_ms, int(self.settings.lease_ttl_s * 1000))
        if held:
            self._renewed_at = now
        if held and not self.stats.holds_lease:
            self.sender.resync()  # another process may have sent since we last held it
            self._broadcast_at.clear()  # and what is unmined is broadcast again
        self.stats.holds_lease = held
        return held

    # ------------------------------------------------------------------ transactions

    def _store_and_broadcast(
        self, purpose: str, signed: SignedTx, attach: Callable[[Session, int], None]
    ) -> None:
        """Persist the signed transaction with the work it carries, then broadcast it."""
        try:
            with self.db.session() as s:
                tx = ChainTxs(s).add(
                    ChainTxRow(
                        purpose=purpose,
                        sender=self.sender.address,
                        nonce=signed.nonce,
                        tx_hash=signed.tx_hash,
                        raw=signed.raw,
                        status="signed",
                        created_at=_now(self.clock),
                    )
                )
                attach(s, tx.id)
        except BaseException:
            self.sender.resync()  # the nonce was not used after all
            raise
        self.stats.txs_sent += 1
        log.info(
            "transaction sent",
            extra={"fields": {"purpose": purpose, "tx": signed.tx_hash, "nonce": signed.nonce}},
        )
        self._broadcast_at[tx.id] = time.monotonic()
        self.sender.broadcast(purpose, signed)

    def _settle(self) -> tuple[int, bool]:
        """Finish the unsettled transactions the chain has consumed the nonce of, in nonce
        order; (how many are still in flight, whether any was finished)."""
        with self.db.session() as s:
            unsettled = ChainTxs(s).unsettled(self.sender.address)
        if not unsettled:
            return 0, False
        # The nonce first, then the receipt: read the other way round, a transaction
        # mined between the two reads would look dropped.
        consumed = self.sender.confirmed_nonce()
        in_flight, settled = 0, False
        now = time.monotonic()
        for tx_id, purpose, tx_hash, raw, nonce in unsettled:
            if nonce >= consumed:
                in_flight += 1
                sent = self._broadcast_at.get(tx_id)
                if sent is None or now - sent > REBROADCAST_AFTER_S:
                    self._broadcast_at[tx_id] = now
                    self.sender.broadcast(purpose, SignedTx(raw, tx_hash, nonce))
                continue
            receipt = self.sender.receipt(tx_hash)
            if receipt is None and now - self._no_receipt_since.setdefault(tx_id, now) < DROPPED_AFTER_S:
                in_flight += 1  # ask again on a later step before calling it dropped
                continue
            self._no_receipt_since.pop(tx_id, None)
            self._broadcast_at.pop(tx_id, None)
            settled = True
            if receipt is None:
                self._finish(tx_id, None, "dropped")
                self.sender.resync()
                continue
            self._finish(tx_id, receipt, "mined" if receipt["status"] == 1 else "reverted")
        return in_flight, settled

    def _finish(self, tx_id: int, receipt: Receipt | None, status: str) -> None:
        """Record how a transaction ended and settle the work it carried."""
        ok = status == "mined"
        with self.db.session() as s:
            tx = ChainTxs(s).by_id(tx_id)
            assert tx is not None
            tx.status = status
            if receipt is not None:
                tx.block_number, tx.gas_used = int(receipt["blockNumber"]), int(receipt["gasUsed"])
                tx.mined_at = _now(self.clock)
            if tx.purpose == "anchor":
                self._settle_anchor(s, tx, receipt if ok else None)
            elif tx.purpose == "log":
                self._settle_log(s, tx, ok)
            else:
                self._settle_jobs(s, tx, receipt if ok else None)

    # ------------------------------------------------------------------ relay jobs

    def _next_job(self) -> bool:
        with self.db.session() as s:
            job = ChainJobs(s).next_pending(JOB_PRIORITY)
            if job is None:
                return False
            job_id, kind, payload = job.id, job.kind, json.loads(job.payload)
            batch: list[tuple[int, dict[str, Any]]] = []
            if kind == "grant" and self.clock() >= self._single_grants_until:
                batch = [
                    (j.id, json.loads(j.payload))
                    for j in ChainJobs(s).pending_of_kind("grant", GRANT_BATCH_MAX)
                ]
        if len(batch) > 1:
            return self._send_grants(batch)
        try:
            contract, call = self._job_call(kind, payload)
            signed = self.sender.sign(contract, call)
        except errors.ContractReverted as exc:
            self._fail_jobs([job_id], str(exc))
            return True

        def attach(s: Session, tx_id: int) -> None:
            row = ChainJobs(s).by_id(job_id)
            assert row is not None
            row.status, row.tx_id = "sent", tx_id

        self._store_and_broadcast("job", signed, attach)
        return True

    def _send_grants(self, batch: list[tuple[int, dict[str, Any]]]) -> bool:
        """Several patients' grants in one grantBatchBySig; an item the contract skips is
        found missing among the receipt's ConsentGranted events and fails with the reason."""
        ids = [job_id for job_id, _ in batch]
        items = [(Grant.from_json(p["message"]), bytes.fromhex(p["signature"])) for _, p in batch]
        try:
            consents = self.ledger.consents
            signed = self.sender.sign_data(
                "ConsentRegistry", consents.address, consents.grant_batch_data(items)
            )
        except errors.ContractReverted as exc:
            self._fail_jobs(ids, str(exc))
            return True

        def attach(s: Session, tx_id: int) -> None:
            for row in ChainJobs(s).by_ids(ids):
                row.status, row.tx_id = "sent", tx_id

        self._store_and_broadcast("job", signed, attach)
        return True

    def _fail_jobs(self, job_ids: list[int], error: str) -> None:
        with self.db.session() as s:
            for failed in ChainJobs(s).by_ids(job_ids):
                failed.status, failed.error, failed.done_at = "failed", error, _now(self.clock)
        self.stats.jobs_failed += len(job_ids)

    def _job_call(self, kind: str, p: dict[str, Any]) -> tuple[str, Call]:
        sig = bytes.fromhex(p["signature"])
        m = p["message"]
        if kind == "grant":
            return "ConsentRegistry", self.ledger.consents.grant_call(Grant.from_json(m), sig)
        if kind == "revoke":
            call = self.ledger.consents.revoke_call(Revocation.from_json(m), p["grantee"], p["index"], sig)
            return "ConsentRegistry", call
        if kind == "enroll":
            return "RecordRegistry", self.ledger.records.enroll_call(Enrollment.from_json(m), sig)
        if kind == "erase":
            r = p["record"]
            record = merkle.AnchoredRecord.of(
                r["batch_id"],
                r["custodian"],
                r["patient"],
                r["category"],
                bytes.fromhex(r["commitment"]),
                bytes.fromhex(r["supersedes"]),
            )
            proof = [bytes.fromhex(x) for x in p["proof"]]
            return "RecordRegistry", self.ledger.records.erase_call(Erasure.from_json(m), record, proof, sig)
        raise errors.ConfigurationError(f"unknown relay job kind {kind}")

    def _settle_jobs(self, s: Session, tx: ChainTxRow, receipt: Receipt | None) -> None:
        jobs = list(ChainJobs(s).by_tx(tx.id))
        if receipt is None and len(jobs) > 1:
            # A whole batch failed (e.g. out of gas in one patient's wallet): the grants go
            # again, one per transaction, so that each fails or succeeds on its own.
            for job in jobs:
                job.status, job.tx_id = "pending", None
            self._single_grants_until = self.clock() + SINGLE_GRANTS_AFTER_FAILED_BATCH_S
            return
        granted = self.ledger.consents.granted_all(receipt) if receipt is not None else []
        for job in jobs:
            job.done_at = _now(self.clock)
            event = None
            if receipt is not None and job.kind == "grant":
                grant = Grant.from_json(json.loads(job.payload)["message"])
                event = next((e for e in granted if e.matches(grant)), None)
                if event is None:
                    why = self._why(job.kind, job.payload)
                    job.status, job.error = "failed", f"transaction {tx.tx_hash} skipped this grant{why}"
                    self.stats.jobs_failed += 1
                    continue
                granted.remove(event)
            if receipt is None:
                job.status, job.error = (
                    "failed",
                    f"transaction {tx.tx_hash} {tx.status}{self._why(job.kind, job.payload)}",
                )
                self.stats.jobs_failed += 1
                continue
            result: dict[str, Any] = {"txHash": tx.tx_hash, "blockNumber": tx.block_number}
            if event is not None:
                result |= {"consentId": "0x" + event.consent_id.hex(), "index": event.index}
            job.status, job.result = "done", json.dumps(result)
            self.stats.jobs_done += 1
            if job.kind == "enroll":
                patient = Patients(s).by_address(json.loads(job.payload)["message"]["patient"])
                if patient is not None:
                    patient.status, patient.tx_hash, patient.block_number = (
                        "enrolled",
                        tx.tx_hash,
                        tx.block_number,
                    )

    def _why(self, kind: str, payload: str) -> str:
        """Best effort: what the contract says now when the job is replayed (the state moved on,
        so this is a hint, e.g. a deadline that passed between estimate and mining)."""
        contract, call = self._job_call(kind, json.loads(payload))
        try:
            call.estimate_gas({"from": self.sender.address})
        except Exception as exc:  # noqa: BLE001 - any refusal is the hint we want
            decoded = self.ledger.decoder.decode(contract, _revert_bytes(exc))
            return f"; replayed now: {decoded}"
        return ""

    # ------------------------------------------------------------------ anchoring

    def _due(self, oldest: datetime | None, count: int, cap: int, max_age_s: float) -> bool:
        if oldest is None:
            return False
        return count >= cap or _now(self.clock) - oldest >= timedelta(seconds=max_age_s)

    def _anchor_due(self) -> bool:
        cap = self.settings.anchor_batch_max
        with self.db.session() as s:
            records = Records(s)
            count, oldest = records.pending_summary(cap)
            if not self._due(oldest, count, cap, self.settings.anchor_batch_max_age_s):
                return False
            pending = records.pending_entries(cap)
        # Leaf order is the contract's: grouped by patient, first seen first.
        groups: dict[str, list[tuple[int, RecordEntry]]] = {}
        for row_id, address, category, commitment, supersedes in pending:
            entry = RecordEntry(address, category, commitment, supersedes or bytes(32))
            groups.setdefault(address.lower(), []).append((row_id, entry))
        ordered = [item for group in groups.values() for item in group]
        entries = [entry for _, entry in ordered]
        leaves = [
            merkle.anchored_leaf(self.custodian, e.patient, e.category, e.commitment, e.supersedes)
            for e in entries
        ]
        registry = self.ledger.records
        signed = self.sender.sign_data("RecordRegistry", registry.address, registry.anchor_data(entries))

        def attach(s: Session, tx_id: int) -> None:
            batch = Batches(s).add(
                AnchorBatchRow(
                    status="sending",
                    root=merkle.root(leaves),
                    tx_id=tx_id,
                    record_count=len(ordered),
                    created_at=_now(self.clock),
                )
            )
            Records(s).assign_batch(batch.id, [row_id for row_id, _ in ordered])

        self._store_and_broadcast("anchor", signed, attach)
        return True

    def _settle_anchor(self, s: Session, tx: ChainTxRow, receipt: Receipt | None) -> None:
        batch = Batches(s).by_tx(tx.id)
        if batch is None:
            return
        if receipt is None:  # reverted or dropped: the records wait for the next batch
            batch.status = tx.status
            Records(s).release_batch(batch.id)
            return
        chain_batch_id, root = self.ledger.records.anchored_batch(receipt)
        if root != batch.root:
            raise errors.ChainError(f"batch {batch.id}: the chain's root differs from the local tree")
        batch.status, batch.chain_batch_id, batch.block_number = "anchored", chain_batch_id, tx.block_number
        Records(s).mark_anchored(batch.id, _now(self.clock))
        self.stats.records_anchored += batch.record_count

    # ------------------------------------------------------------------ access log

    def _log_due(self) -> bool:
        cap = self.settings.log_batch_max
        with self.db.session() as s:
            disclosures = Disclosures(s)
            count, oldest = disclosures.pending_summary(cap)
            if not self._due(oldest, count, cap, self.settings.log_batch_max_age_s):
                return False
            pending = disclosures.pending_entries(cap)
            unloggable = {row.id for row in pending if not _loggable(row.signature)}
            if unloggable:  # never let one bad row stall the whole log
                disclosures.set_status(sorted(unloggable), "unloggable")
                log.error(
                    "disclosures %s cannot be logged on chain (signature not 65-byte r||s||v)",
                    sorted(unloggable),
                )
            pending = [row for row in pending if row.id not in unloggable]
            if not pending:
                return True
        ids = [row.id for row in pending]
        entries = [Disclosure(*row[1:]) for row in pending]
        signed = self.sender.sign_data(
            "AccessLog", self.ledger.access.address, self.ledger.access.log_data(entries)
        )

        def attach(s: Session, tx_id: int) -> None:
            Disclosures(s).set_status(ids, "sending", tx_id)

        self._store_and_broadcast("log", signed, attach)
        return True

    def _settle_log(self, s: Session, tx: ChainTxRow, ok: bool) -> None:
        logged = Disclosures(s).settle_tx(tx.id, ok)
        if ok:
            self.stats.disclosures_logged += logged


def _revert_bytes(exc: Exception) -> bytes:
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    return b""


def _loggable(signature: bytes) -> bool:
    try:
        compact_signature(signature)
    except errors.InvalidSignatureFormat:
        return False
    return True


def _now(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)
