"""Replay: rebuild members, consents, records and disclosures from events alone, and check
the network's rules at the block where each thing happened.

Rules checked (each broken rule is a named Finding):
- every disclosure was covered by a consent valid for that grantee, category and purpose at
  the block its consent was checked at (or was break-glass by an active clinic, which goes
  to the review queue), and its signature recovers to the requester it names;
- nothing was anchored, relayed or logged by a non-member or a suspended member;
- records were anchored only for enrolled patients, and each batch's root is the Merkle
  root of its records;
- every erasure carries its patient's signature (checked on the transaction's input);
- council actions met the threshold of approvals by seated members.
A cross-check then compares the rebuilt state with the contracts' view functions.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from coincurve import PublicKey
from eth_utils.address import to_checksum_address

from careledger.audit.events import Decoder, Event, LogReader
from careledger.audit.model import (
    AuditReport,
    ConsentState,
    DisclosureState,
    Finding,
    MemberState,
    RecordState,
    Severity,
)
from careledger.chain import merkle
from careledger.chain.clients import Ledger
from careledger.chain.deployment import Deployment
from careledger.chain.eip712 import Erasure
from careledger.codes import MemberStatus, Purpose, Role
from careledger.hashing import keccak256

ADMIN, RELAYER, SIGNER = "admin", "relayer", "signer"
ZERO32 = "0x" + "00" * 32
Progress = Callable[[int, int, int], None]  # (blocks done, blocks in all, events so far)


@dataclass
class _Proposal:
    action: int
    subject: str
    votes: set[str] = field(default_factory=set)


@dataclass
class _Tx:
    """Events of the transaction being replayed that are judged once it is complete."""

    tx: str = ""
    block: int = 0
    records: list[RecordState] = field(default_factory=list)
    disclosures: list[DisclosureState] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)  # (event, subject)
    executed: list[tuple[int, str]] = field(default_factory=list)  # (action, subject)


class Replay:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.report = AuditReport(
            deployment.chain_id, deployment.deployment_block, deployment.deployment_block, 0
        )
        self.keys: dict[str, tuple[str, str]] = {}  # key → (member, kind)
        self.seats: set[str] = set()
        self.threshold = 0
        self.proposals: dict[int, _Proposal] = {}
        self.enrolled: set[tuple[str, str]] = set()  # (patient, custodian)
        self.erasures: list[tuple[str, str, int]] = []  # (record, tx, block): signatures checked later
        self._tx = _Tx()
        self._logged_requests: set[str] = set()  # request hashes already in the access log
        self._first_tx: str | None = None
        self._handlers: dict[str, Callable[[Event], None]] = {
            name[3:]: getattr(self, name) for name in dir(self) if name.startswith("on_")
        }

    # ------------------------------------------------------------------ driving

    def apply(self, event: Event) -> None:
        if event.tx != self._tx.tx:
            self._close_tx()
            self._tx = _Tx(event.tx, event.block)
            if self._first_tx is None:
                self._first_tx = event.tx
        self.report.events += 1
        handler = self._handlers.get(event.name)
        if handler is not None:
            handler(event)

    def finish(self) -> None:
        self._close_tx()

    def _find(
        self, code: str, severity: Severity, message: str, event: Event | None = None, **where: Any
    ) -> None:
        if event is not None:
            where.setdefault("block", event.block)
            where.setdefault("tx_hash", event.tx)
        self.report.findings.append(Finding(code, severity, message, **where))

    # ------------------------------------------------------------------ who acts

    def _acts_for(self, key: str, kinds: tuple[str, ...]) -> str | None:
        bound = self.keys.get(key)
        return bound[0] if bound is not None and bound[1] in kinds else None

    def _active(self, member: str | None, role: Role | None = None) -> bool:
        state = self.report.members.get(member or "")
        return (
            state is not None and state.status == MemberStatus.ACTIVE and (role is None or state.role == role)
        )

    def _check_sender(self, event: Event, key: str, what: str, role: Role | None = None) -> str | None:
        member = self._acts_for(key, (ADMIN, RELAYER))
        if not self._active(member, role):
            label = "a non-member" if member is None else f"suspended or wrong-role member {member}"
            self._find(
                "sent-by-non-member",
                Severity.CRITICAL,
                f"{what} sent by {label} (key {key})",
                event,
                member=member,
            )
        return member

    # ------------------------------------------------------------------ MemberRegistry

    def on_SeatAdded(self, e: Event) -> None:
        self.seats.add(e.args["seat"])
        self._tx.actions.append(("SeatAdded", e.args["seat"]))

    def on_SeatRemoved(self, e: Event) -> None:
        self.seats.discard(e.args["seat"])
        self._tx.actions.append(("SeatRemoved", e.args["seat"]))

    def on_ThresholdChanged(self, e: Event) -> None:
        self.threshold = e.args["threshold"]
        self._tx.actions.append(("ThresholdChanged", ""))

    def on_ProposalCreated(self, e: Event) -> None:
        self.proposals[e.args["proposalId"]] = _Proposal(e.args["action"], e.args["subject"])

    def on_ProposalVoted(self, e: Event) -> None:
        proposal = self.proposals.get(e.args["proposalId"])
        if proposal is not None:
            proposal.votes.add(e.args["seat"])

    def on_ProposalExecuted(self, e: Event) -> None:
        proposal = self.proposals.get(e.args["proposalId"])
        approvals = len(proposal.votes & self.seats) if proposal else 0
        if approvals < self.threshold:
            self._find(
                "council-threshold-bypassed",
                Severity.CRITICAL,
                f"proposal {e.args['proposalId']} took effect with {approvals} of {self.threshold} approvals",
                e,
            )
        self._tx.executed.append((e.args["action"], e.args["subject"]))

    def on_MemberAdmitted(self, e: Event) -> None:
        m = e.args["member"]
        self.report.members[m] = MemberState(
            m,
            e.args["role"],
            e.args["name"],
            MemberStatus.ACTIVE,
            e.args["endpoint"],
            [(e.block, MemberStatus.ACTIVE)],
        )
        self.keys[m] = (m, ADMIN)
        self._tx.actions.append(("MemberAdmitted", m))

    def _status(self, e: Event, status: MemberStatus, action: str) -> None:
        member = self.report.members.get(e.args["member"])
        if member is not None:
            member.status = status
            member.history.append((e.block, status))
        self._tx.actions.append((action, e.args["member"]))

    def on_MemberSuspended(self, e: Event) -> None:
        self._status(e, MemberStatus.SUSPENDED, "MemberSuspended")

    def on_MemberReinstated(self, e: Event) -> None:
        self._status(e, MemberStatus.ACTIVE, "MemberReinstated")

    def on_EndpointChanged(self, e: Event) -> None:
        member = self.report.members.get(e.args["member"])
        if member is not None:
            member.endpoint = e.args["endpoint"]

    def on_RelayerChanged(self, e: Event) -> None:
        self.keys.pop(e.args["previousRelayer"], None)
        self.keys[e.args["relayer"]] = (e.args["member"], RELAYER)

    def on_SignerAdded(self, e: Event) -> None:
        self.keys[e.args["signer"]] = (e.args["member"], SIGNER)

    def on_SignerRemoved(self, e: Event) -> None:
        self.keys.pop(e.args["signer"], None)

    # ------------------------------------------------------------------ ConsentRegistry

    def on_ConsentGranted(self, e: Event) -> None:
        a = e.args
        self._check_sender(e, a["relayer"], "consent grant")
        self.report.consents[a["consentId"]] = ConsentState(
            a["consentId"],
            a["patient"],
            a["grantee"],
            a["categories"],
            a["purposes"],
            a["validFrom"],
            a["validUntil"],
            e.block,
        )

    def on_ConsentRevoked(self, e: Event) -> None:
        self._check_sender(e, e.args["relayer"], "consent revocation")
        consent = self.report.consents.get(e.args["consentId"])
        if consent is not None and consent.revoked_block is None:
            consent.revoked_block = e.block

    # ------------------------------------------------------------------ RecordRegistry

    def on_PatientEnrolled(self, e: Event) -> None:
        sender = self._check_sender(e, e.args["relayer"], "enrollment", Role.CLINIC)
        if sender is not None and sender != e.args["custodian"]:
            self._find(
                "sent-by-non-member",
                Severity.CRITICAL,
                f"enrollment at {e.args['custodian']} sent by {sender}",
                e,
                member=sender,
            )
        self.enrolled.add((e.args["patient"], e.args["custodian"]))

    def on_RecordAnchored(self, e: Event) -> None:
        a = e.args
        supersedes = None if a["supersedes"] == ZERO32 else a["supersedes"]
        record = RecordState(
            a["recordId"],
            a["patient"],
            a["custodian"],
            a["category"],
            a["commitment"],
            supersedes,
            -1,
            e.block,
            e.tx,
        )
        self._tx.records.append(record)

    def on_RecordBatchAnchored(self, e: Event) -> None:
        a = e.args
        custodian = a["custodian"]
        sender = self._check_sender(e, a["relayer"], "record batch", Role.CLINIC)
        if sender is not None and sender != custodian:
            self._find("sent-by-non-member", Severity.CRITICAL, f"batch for {custodian} sent by {sender}", e)
        records, self._tx.records = self._tx.records, []
        leaves = []
        for r in records:
            r.batch_id = a["batchId"]
            if (r.patient, custodian) not in self.enrolled:
                self._find(
                    "anchored-for-unenrolled",
                    Severity.CRITICAL,
                    f"record anchored for a patient not enrolled at {custodian}",
                    e,
                    record_id=r.record_id,
                    patient=r.patient,
                    member=custodian,
                )
            if r.supersedes is not None:
                self._check_supersedes(e, r, custodian)
            self.report.records[r.record_id] = r
            leaves.append(_leaf(r))
        if len(records) != a["count"] or not leaves or "0x" + merkle.root(leaves).hex() != a["root"]:
            self._find(
                "batch-root-mismatch",
                Severity.HIGH,
                f"batch {a['batchId']}: its root is not the Merkle root of its {len(records)} records",
                e,
                member=custodian,
            )

    def _check_supersedes(self, e: Event, r: RecordState, custodian: str) -> None:
        old = self.report.records.get(r.supersedes or "")
        if old is None or old.patient != r.patient or old.custodian != custodian:
            self._find(
                "bad-supersedes",
                Severity.HIGH,
                "record supersedes a record of another patient or custodian, or none",
                e,
                record_id=r.record_id,
            )
        else:
            old.superseded_by = r.record_id

    def on_RecordErased(self, e: Event) -> None:
        self._check_sender(e, e.args["relayer"], "erasure mark")
        record = self.report.records.get(e.args["recordId"])
        if record is None or record.patient != e.args["patient"]:
            self._find(
                "erasure-of-unknown-record",
                Severity.CRITICAL,
                "erasure marked for a record not anchored for that patient",
                e,
                record_id=e.args["recordId"],
            )
            return
        record.erased_block = e.block
        self.erasures.append((record.record_id, e.tx, e.block))

    # ------------------------------------------------------------------ AccessLog

    def on_AccessLogged(self, e: Event) -> None:
        a = e.args
        requester = a["requester"]
        member = self._acts_for(requester, (ADMIN, SIGNER))
        record = self.report.records.get(a["recordId"])
        self._tx.disclosures.append(
            DisclosureState(
                a["recordId"],
                requester,
                member,
                None,
                record.patient if record else None,
                record.category if record else None,
                a["purpose"],
                a["breakGlass"],
                a["checkedBlock"],
                a["basis"],
                a["requestHash"],
                a["sigR"] + a["sigVS"][2:],
                e.block,
                e.tx,
            )
        )

    def on_AccessBatchLogged(self, e: Event) -> None:
        custodian = e.args["custodian"]
        sender = self._check_sender(e, e.args["relayer"], "access log batch", Role.CLINIC)
        if sender is not None and sender != custodian:
            self._find("sent-by-non-member", Severity.CRITICAL, f"log for {custodian} sent by {sender}", e)
        entries, self._tx.disclosures = self._tx.disclosures, []
        for d in entries:
            d.custodian = custodian
            record = self.report.records.get(d.record_id)
            if record is None or record.custodian != custodian:
                self._find(
                    "disclosure-of-foreign-record",
                    Severity.CRITICAL,
                    f"{custodian} logged a disclosure of a record it does not hold",
                    e,
                    record_id=d.record_id,
                    member=custodian,
                )
            if d.request_hash in self._logged_requests:
                self._find(
                    "disclosure-logged-twice",
                    Severity.MEDIUM,
                    "the same signed request is logged again: the accounting would count one read twice",
                    e,
                    record_id=d.record_id,
                    member=custodian,
                )
            self._logged_requests.add(d.request_hash)
            if e.block - d.checked_block > self.deployment.max_check_lag:
                self._find(
                    "disclosure-logged-late",
                    Severity.MEDIUM,
                    f"logged {e.block - d.checked_block} blocks after its consent check (prompt is within "
                    f"{self.deployment.max_check_lag}): past that, the checked block is the gateway's word",
                    e,
                    record_id=d.record_id,
                    member=custodian,
                )
            if d.member is None or not self._active(d.member):
                self._find(
                    "disclosure-to-non-member",
                    Severity.CRITICAL,
                    f"record disclosed to {d.requester}, which signs for no active member",
                    e,
                    record_id=d.record_id,
                )
            elif d.break_glass:
                if self._active(d.member, Role.CLINIC):
                    self.report.review_queue.append(d)
                else:
                    self._find(
                        "break-glass-by-non-clinic",
                        Severity.CRITICAL,
                        f"break-glass by {d.member}, not an active clinic",
                        e,
                        member=d.member,
                        record_id=d.record_id,
                    )
            self.report.disclosures.append(d)

    # ------------------------------------------------------------------ transaction boundaries

    def _close_tx(self) -> None:
        tx = self._tx
        if tx.records:
            self._find(
                "records-without-batch",
                Severity.HIGH,
                "records anchored outside a batch event",
                block=tx.block,
                tx_hash=tx.tx,
            )
        if tx.disclosures:
            self._find(
                "disclosures-without-batch",
                Severity.HIGH,
                "disclosures logged outside a batch event",
                block=tx.block,
                tx_hash=tx.tx,
            )
        governed = {
            "MemberAdmitted",
            "MemberSuspended",
            "MemberReinstated",
            "SeatAdded",
            "SeatRemoved",
            "ThresholdChanged",
        }
        council_actions = [a for a in tx.actions if a[0] in governed]
        if council_actions and not tx.executed and tx.tx != self._first_tx:
            self._find(
                "council-action-without-proposal",
                Severity.CRITICAL,
                f"{council_actions[0][0]} without an executed proposal",
                block=tx.block,
                tx_hash=tx.tx,
            )


def _leaf(r: RecordState) -> bytes:
    """The record's Merkle leaf, abi.encode'd from the hex the events carried (no eth_abi)."""
    pad = "0" * 24
    return keccak256(
        bytes.fromhex(
            r.record_id[2:]
            + pad
            + r.patient[2:]
            + pad
            + r.custodian[2:]
            + f"{r.category:064x}"
            + r.commitment[2:]
            + (r.supersedes or ZERO32)[2:]
        )
    )


# ---------------------------------------------------------------------- after the events


def check_disclosures(report: AuditReport, timestamps: dict[int, int], signers: list[str | None]) -> None:
    """Consent coverage at the checked block, and signatures (recovered signers given in order)."""
    for d in report.disclosures:
        d.timestamp = timestamps.get(d.block)
    for d, signer in zip(report.disclosures, signers, strict=True):
        if signer != d.requester:
            report.findings.append(
                Finding(
                    "disclosure-signature-mismatch",
                    Severity.CRITICAL,
                    f"the logged signature does not recover to the requester {d.requester}",
                    d.block,
                    d.tx_hash,
                    d.custodian,
                    d.record_id,
                    d.patient,
                )
            )
        if d.break_glass:
            continue
        problem = _consent_problem(report, d, timestamps.get(d.checked_block))
        if problem is not None:
            code, message = problem
            report.findings.append(
                Finding(
                    code, Severity.CRITICAL, message, d.block, d.tx_hash, d.custodian, d.record_id, d.patient
                )
            )


class _Recovery:
    """Signature recovery in worker processes, fed while events are still being read: it is
    the audit's costliest step (~24,000 recoveries/s a core with libsecp256k1)."""

    CHUNK = 500

    def __init__(self) -> None:
        workers = max(1, min(4, os.cpu_count() or 1))
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
        self._futures: list[Future[list[str | None]]] = []
        self._sent = 0

    def feed(self, disclosures: list[DisclosureState], *, final: bool = False) -> None:
        while len(disclosures) - self._sent >= (1 if final else self.CHUNK):
            part = disclosures[self._sent : self._sent + self.CHUNK]
            self._futures.append(
                self._pool.submit(recover_signers, [(d.request_hash, d.signature) for d in part])
            )
            self._sent += len(part)

    def results(self) -> list[str | None]:
        try:
            return [signer for future in self._futures for signer in future.result()]
        finally:
            self._pool.shutdown()


def _consent_problem(
    report: AuditReport, d: DisclosureState, checked_at: int | None
) -> tuple[str, str] | None:
    consent = report.consents.get(d.basis)
    if consent is None or d.category is None:
        return "disclosure-without-consent", f"disclosed under {d.basis}, which is no consent"
    if consent.patient != d.patient or consent.grantee != d.member:
        return "disclosure-without-consent", "the consent named is another patient's or another grantee's"
    if not (consent.categories >> d.category) & 1 or not (consent.purposes >> d.purpose) & 1:
        return "disclosure-without-consent", (
            f"the consent does not cover category {d.category} for purpose {Purpose(d.purpose).name}"
        )
    if consent.granted_block > d.checked_block:
        return "disclosure-without-consent", (
            f"consent {d.basis} granted at block {consent.granted_block}, checked at {d.checked_block}"
        )
    if consent.revoked_block is not None and consent.revoked_block <= d.checked_block:
        return (
            "disclosure-after-revocation",
            f"consent revoked at block {consent.revoked_block}, checked at {d.checked_block}",
        )
    if checked_at is not None and not consent.valid_from <= checked_at < consent.valid_until:
        return "disclosure-outside-validity", "the consent was not valid at the block it was checked at"
    return None


def recover_signers(items: list[tuple[str, str]]) -> list[str | None]:
    """Address each (EIP-191 hash, 65-byte compact-expanded signature) recovers to (coincurve)."""
    out: list[str | None] = []
    for digest_hex, sig_hex in items:
        try:
            r_vs = bytes.fromhex(sig_hex[2:])
            r, vs = r_vs[:32], int.from_bytes(r_vs[32:], "big")
            recid, s = vs >> 255, vs & ((1 << 255) - 1)
            public = PublicKey.from_signature_and_message(
                r + s.to_bytes(32, "big") + bytes([recid]), bytes.fromhex(digest_hex[2:]), hasher=None
            )
            out.append("0x" + keccak256(public.format(compressed=False)[1:])[-20:].hex())
        except (ValueError, TypeError):
            out.append(None)
    return out


def check_erasures(report: AuditReport, replay: Replay, ledger: Ledger) -> None:
    """Every erasure mark carries its patient's EIP-712 signature (read from the transaction)."""
    contract = ledger.records.contract
    for record_id, tx_hash, block in replay.erasures:
        tx = ledger.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        _, params = contract.decode_function_input(tx["input"])
        signed = params["erasure"]  # web3 decodes the struct by field name
        erasure = Erasure(signed["patient"], bytes(signed["recordId"]), signed["nonce"], signed["deadline"])
        digest = erasure.digest(ledger.record_domain)
        signature = bytes(params["signature"])
        patient = report.records[record_id].patient
        ok = False
        if len(signature) == 65:
            signer = recover_signers(
                [("0x" + digest.hex(), "0x" + signature[:32].hex() + _vs(signature).hex())]
            )[0]
            ok = signer == patient
        if not ok:
            report.findings.append(
                Finding(
                    "erasure-without-patient-signature",
                    Severity.CRITICAL,
                    "an erasure mark whose signature is not the patient's",
                    block,
                    tx_hash,
                    record_id=record_id,
                    patient=patient,
                )
            )


def _vs(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:64], "big")
    return (((signature[64] - 27) << 255) | s).to_bytes(32, "big")


def cross_check(report: AuditReport, ledger: Ledger, replay: Replay) -> None:
    """The rebuilt state against the contracts' current view functions."""
    members = ledger.members
    for address, state in report.members.items():
        onchain = members.get_member(to_checksum_address(address))
        if int(onchain.status) != int(state.status) or int(onchain.role) != int(state.role):
            report.findings.append(
                Finding(
                    "state-mismatch",
                    Severity.HIGH,
                    f"member {address}: replay says status {state.status}, chain says {int(onchain.status)}",
                    member=address,
                )
            )
    if members.threshold() != replay.threshold or {s.lower() for s in members.seats()} != replay.seats:
        report.findings.append(Finding("state-mismatch", Severity.HIGH, "council seats or threshold differ"))
    batches = {r.batch_id for r in report.records.values()}
    if ledger.records.batch_count() != len(batches):
        report.findings.append(
            Finding(
                "state-mismatch",
                Severity.HIGH,
                f"{ledger.records.batch_count()} batches on chain, {len(batches)} replayed",
            )
        )
    for record in report.records.values():
        if record.erased_block is not None and not ledger.records.is_erased(
            bytes.fromhex(record.record_id[2:])
        ):
            report.findings.append(
                Finding(
                    "state-mismatch",
                    Severity.HIGH,
                    "erasure not reflected on chain",
                    record_id=record.record_id,
                )
            )
    for consent in report.consents.values():
        patient, grantee = to_checksum_address(consent.patient), to_checksum_address(consent.grantee)
        stored = ledger.consents.get_consent(
            patient, grantee, _index_of(ledger, patient, grantee, consent.consent_id)
        )
        if stored.revoked != (consent.revoked_block is not None):
            report.findings.append(
                Finding("state-mismatch", Severity.HIGH, f"consent {consent.consent_id}: revocation differs")
            )


def _index_of(ledger: Ledger, patient: str, grantee: str, consent_id: str) -> int:
    for index in range(ledger.consents.consent_count(patient, grantee)):
        if "0x" + ledger.consents.consent_id_of(patient, grantee, index).hex() == consent_id:
            return index
    return 0


def replay(
    rpc_url: str,
    deployment: Deployment,
    *,
    to_block: int | None = None,
    ledger: Ledger | None = None,
    cache: Any = None,
    progress: Progress | None = None,
    cross_check_views: bool = True,
) -> AuditReport:
    """Replay every event from the deployment block and check the rules."""
    reader = LogReader(rpc_url, deployment, cache=cache)
    decoder = Decoder(deployment)
    engine = Replay(deployment)
    recovery = _Recovery()
    started = time.perf_counter()
    # The replay keeps almost everything it builds (the report's state) and makes no cycles
    # worth collecting; the cyclic collector would only walk that growing state again and
    # again (measured: about a sixth of the replay's time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        end = reader.head() if to_block is None else to_block
        start = deployment.deployment_block
        for _, last, logs in reader.prefetched(start, end):
            for log in logs:
                event = decoder.decode(log)
                if event is not None:
                    engine.apply(event)
            recovery.feed(engine.report.disclosures)
            if progress is not None:
                progress(last - start + 1, end - start + 1, engine.report.events)
        engine.finish()
        recovery.feed(engine.report.disclosures, final=True)
        blocks = {d.checked_block for d in engine.report.disclosures} | {
            d.block for d in engine.report.disclosures
        }
        timestamps = reader.timestamps(blocks)
        check_disclosures(engine.report, timestamps, recovery.results())
    finally:
        reader.close()
        if collecting:
            gc.enable()
    report = engine.report
    report.to_block = end
    report.timings["replay_s"] = time.perf_counter() - started
    if ledger is not None:
        started = time.perf_counter()
        check_erasures(report, engine, ledger)
        if cross_check_views:
            cross_check(report, ledger, engine)
        report.timings["cross_check_s"] = time.perf_counter() - started
    return report


def events_per_second(report: AuditReport) -> float:
    return report.events / report.timings["replay_s"] if report.timings.get("replay_s") else 0.0
