"""Typed clients for the four contracts, over one web3 connection and deployment file."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from careledger import errors
from careledger.chain import merkle
from careledger.chain.deployment import Deployment
from careledger.chain.eip712 import (
    CONSENT_DOMAIN,
    RECORD_DOMAIN,
    Domain,
    Enrollment,
    Erasure,
    Grant,
    Revocation,
)
from careledger.chain.reverts import RevertDecoder
from careledger.chain.rpc import RawRpc
from careledger.chain.sender import Sender, _revert_data
from careledger.chain.words import address_word, bytes32_word, uint_word
from careledger.codes import MemberStatus, Role
from careledger.hashing import checksum

# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class Member:
    address: str
    role: Role
    status: MemberStatus
    relayer: str | None
    name: str
    endpoint: str


@dataclass(frozen=True)
class Proposal:
    proposal_id: int
    action: int
    role: Role
    executed: bool
    deadline: int
    proposer: str
    subject: str
    value: int
    name: str
    endpoint: str


@dataclass(frozen=True)
class StoredConsent:
    categories: int
    purposes: int
    valid_from: int
    valid_until: int
    revoked: bool


@dataclass(frozen=True)
class ConsentEvent:
    kind: str  # granted | revoked
    consent_id: bytes
    patient: str
    grantee: str
    index: int
    categories: int
    purposes: int
    valid_from: int
    valid_until: int
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class TxInfo:
    tx_hash: str
    block_number: int
    gas_used: int

    @classmethod
    def of(cls, receipt: TxReceipt) -> TxInfo:
        return cls(
            receipt["transactionHash"].to_0x_hex(), int(receipt["blockNumber"]), int(receipt["gasUsed"])
        )


@dataclass(frozen=True)
class GrantReceipt:
    consent_id: bytes
    index: int
    tx: TxInfo


@dataclass(frozen=True)
class GrantedEvent:
    """A ConsentGranted event: which grant it recorded, and the consent's id and index."""

    consent_id: bytes
    patient: str
    grantee: str
    index: int
    categories: int
    purposes: int
    valid_from: int
    valid_until: int

    def matches(self, grant: Grant) -> bool:
        return (
            self.patient.lower() == grant.patient.lower()
            and self.grantee.lower() == grant.grantee.lower()
            and (self.categories, self.purposes, self.valid_from, self.valid_until)
            == (grant.categories, grant.purposes, grant.valid_from, grant.valid_until)
        )


@dataclass(frozen=True)
class RecordEntry:
    """One record version to anchor for an enrolled patient (its id derives from the commitment)."""

    patient: str
    category: int
    commitment: bytes
    supersedes: bytes = b"\x00" * 32


@dataclass(frozen=True)
class AnchorReceipt:
    batch_id: int
    root: bytes
    records: list[merkle.AnchoredRecord]  # in leaf order
    tx: TxInfo

    def proof(self, record_id: bytes) -> list[bytes]:
        leaves = [r.leaf() for r in self.records]
        index = next(i for i, r in enumerate(self.records) if r.record_id == record_id)
        return merkle.proof(leaves, index)


@dataclass(frozen=True)
class Disclosure:
    """One access-log entry; `signature` is the requester's 65-byte r‖s‖v signature."""

    record_id: bytes
    requester: str
    purpose: int
    break_glass: bool
    checked_block: int
    basis: bytes
    request_hash: bytes
    signature: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        r, vs = compact_signature(self.signature)
        meta = pack_meta(self.requester, self.checked_block, self.purpose, self.break_glass)
        return (self.record_id, meta, self.basis, self.request_hash, r, vs)


def pack_meta(requester: str, checked_block: int, purpose: int, break_glass: bool) -> int:
    """The `meta` word of an access-log entry (contracts/libraries/DisclosureMeta.sol)."""
    if not 0 <= checked_block < 2**64 or not 0 <= purpose < 2**8:
        raise ValueError("checked block or purpose out of range")
    return int(requester, 16) | checked_block << 160 | purpose << 224 | int(break_glass) << 232


def compact_signature(signature: bytes) -> tuple[bytes, bytes]:
    """EIP-2098: 65-byte r‖s‖v (v = 27/28) as (r, (v - 27) << 255 | s)."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        raise errors.InvalidSignatureFormat("expected a 65-byte r‖s‖v signature with v = 27 or 28")
    s = int.from_bytes(signature[32:64], "big")
    if s >> 255:
        raise errors.InvalidSignatureFormat("signature s is not in the lower half (EIP-2)")
    vs = ((signature[64] - 27) << 255) | s
    return signature[:32], vs.to_bytes(32, "big")


def expand_signature(r: bytes, vs: bytes) -> bytes:
    """Inverse of compact_signature."""
    value = int.from_bytes(vs, "big")
    v = 27 + (value >> 255)
    s = value & ((1 << 255) - 1)
    return r + s.to_bytes(32, "big") + bytes([v])


@dataclass(frozen=True)
class LoggedDisclosure:
    """A disclosure as the AccessLogged event tells it."""

    record_id: bytes
    requester: str
    purpose: int
    break_glass: bool
    checked_block: int
    basis: bytes
    request_hash: bytes
    signature: bytes
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class LogReceipt:
    batch_id: int
    count: int
    tx: TxInfo


@dataclass(frozen=True)
class AnchoredEvent:
    """A RecordAnchored event: the record (with its batch id) and where it was anchored."""

    record: merkle.AnchoredRecord
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class ErasedEvent:
    """A RecordErased event: the record marked erased with its patient's signature."""

    record_id: bytes
    patient: str
    custodian: str
    batch_id: int
    block_number: int
    tx_hash: str


ZERO_ADDRESS = "0x" + "00" * 20


# --------------------------------------------------------------------------- base


class _ContractClient:
    NAME: str

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        info = ledger.deployment.contracts[self.NAME]
        self.address = info.address
        self.contract: Contract = ledger.w3.eth.contract(
            address=Web3.to_checksum_address(info.address), abi=info.abi
        )

    def _call(self, fn: ContractFunction, block: int | None = None) -> Any:
        try:
            return fn.call() if block is None else fn.call(block_identifier=block)
        except ContractLogicError as exc:
            raise self.ledger.decoder.decode(self.NAME, _revert_data(exc)) from None
        except (OSError, ConnectionError) as exc:
            raise errors.ChainUnavailable(f"chain unreachable: {exc}") from None

    def _transact(self, by: Sender, fn: ContractFunction) -> TxReceipt:
        return by.transact(self.NAME, fn)

    def _events(self, receipt: TxReceipt, event: str) -> list[Any]:
        return list(self.contract.events[event]().process_receipt(receipt, errors=DISCARD))

    def _raw_events(self, receipt: TxReceipt, event: str) -> list[Any]:
        """`event`s of a receipt whose logs may be raw JSON-RPC (Sender.receipt): only this
        contract's logs of that event are formatted and decoded."""
        decoder = self.contract.events[event]()
        topic = HexBytes(decoder.topic)
        found = []
        for entry in receipt["logs"]:
            topics = [HexBytes(t) for t in entry["topics"]]
            if str(entry["address"]).lower() != self.address.lower() or not topics:
                continue
            if topics[0] != topic:
                continue
            log = {
                "address": Web3.to_checksum_address(entry["address"]),
                "topics": topics,
                "data": HexBytes(entry["data"]),
                "blockNumber": _int(entry["blockNumber"]),
                "blockHash": HexBytes(entry["blockHash"]),
                "transactionHash": HexBytes(entry["transactionHash"]),
                "transactionIndex": _int(entry["transactionIndex"]),
                "logIndex": _int(entry["logIndex"]),
            }
            found.append(decoder.process_log(log))
        return found

    def _logs(self, event: str, filters: dict[str, Any]) -> list[Any]:
        try:
            return list(
                self.contract.events[event]().get_logs(
                    from_block=self.ledger.deployment.deployment_block, argument_filters=filters
                )
            )
        except (OSError, ConnectionError) as exc:
            raise errors.ChainUnavailable(f"chain unreachable: {exc}") from None


# --------------------------------------------------------------------------- MemberRegistry


class MemberRegistryClient(_ContractClient):
    NAME = "MemberRegistry"

    def propose_admit(self, by: Sender, member: str, role: Role, name: str, endpoint: str = "") -> int:
        fn = self.contract.functions.proposeAdmit(member, int(role), name, endpoint)
        return self._proposal_id(self._transact(by, fn))

    def propose_suspend(self, by: Sender, member: str) -> int:
        return self._proposal_id(self._transact(by, self.contract.functions.proposeSuspend(member)))

    def propose_reinstate(self, by: Sender, member: str) -> int:
        return self._proposal_id(self._transact(by, self.contract.functions.proposeReinstate(member)))

    def propose_add_seat(self, by: Sender, seat: str) -> int:
        return self._proposal_id(self._transact(by, self.contract.functions.proposeAddSeat(seat)))

    def propose_remove_seat(self, by: Sender, seat: str) -> int:
        return self._proposal_id(self._transact(by, self.contract.functions.proposeRemoveSeat(seat)))

    def propose_threshold(self, by: Sender, threshold: int) -> int:
        return self._proposal_id(self._transact(by, self.contract.functions.proposeThreshold(threshold)))

    def vote(self, by: Sender, proposal_id: int) -> bool:
        """Approve a proposal; True if this vote made it take effect."""
        receipt = self._transact(by, self.contract.functions.vote(proposal_id))
        return bool(self._events(receipt, "ProposalExecuted"))

    def set_endpoint(self, by: Sender, endpoint: str) -> TxInfo:
        return TxInfo.of(self._transact(by, self.contract.functions.setEndpoint(endpoint)))

    def set_relayer(self, by: Sender, relayer: str) -> TxInfo:
        return TxInfo.of(self._transact(by, self.contract.functions.setRelayer(relayer)))

    def add_signer(self, by: Sender, signer: str) -> TxInfo:
        return TxInfo.of(self._transact(by, self.contract.functions.addSigner(signer)))

    def remove_signer(self, by: Sender, signer: str) -> TxInfo:
        return TxInfo.of(self._transact(by, self.contract.functions.removeSigner(signer)))

    def get_member(self, member: str) -> Member:
        role, status, relayer, name, endpoint = self._call(self.contract.functions.getMember(member))
        return Member(
            Web3.to_checksum_address(member),
            Role(role),
            MemberStatus(status),
            None if relayer == ZERO_ADDRESS else relayer,
            name,
            endpoint,
        )

    def members(self) -> list[Member]:
        count = self._call(self.contract.functions.memberCount())
        return [self.get_member(self._call(self.contract.functions.memberAt(i))) for i in range(count)]

    def status_of(self, member: str) -> MemberStatus:
        """A member's status at the head block, cached like active_signer."""
        head = self.ledger.head()
        key = member.lower()
        cached = self.ledger.watcher.statuses.get(key)
        if cached is not None:
            return cached
        status = MemberStatus(self._call(self.contract.functions.getMember(member), head.number)[1])
        self.ledger.watcher.remember(self.ledger.watcher.statuses, key, status, head)
        return status

    def active_sender(self, account: str) -> tuple[str | None, Role]:
        member, role = self._call(self.contract.functions.activeSender(account))
        return (None if member == ZERO_ADDRESS else member), Role(role)

    def active_signer(self, account: str) -> tuple[str | None, Role]:
        """Whom `account` signs for, at the head block. Answers are kept until a
        MemberRegistry event is mined (Ledger.head() watches for them), so a request costs one
        eth_blockNumber instead of an eth_call."""
        head = self.ledger.head()
        key = account.lower()
        cached = self.ledger.watcher.signers.get(key)
        if cached is not None:
            return cached
        words = self.ledger.watcher.call(self.address, _ACTIVE_SIGNER, [address_word(account)], head.number)
        if words is None:  # refused: let web3 decode why
            member, role = self._call(self.contract.functions.activeSigner(account), head.number)
        else:
            member, role = _address(words[0]), int.from_bytes(words[1], "big")
        answer = (None if member == ZERO_ADDRESS else Web3.to_checksum_address(member)), Role(role)
        self.ledger.watcher.remember(self.ledger.watcher.signers, key, answer, head)
        return answer

    def key_of(self, account: str) -> tuple[str | None, int]:
        member, kind = self._call(self.contract.functions.keyOf(account))
        return (None if member == ZERO_ADDRESS else member), int(kind)

    def allowlist(self) -> list[str]:
        return list(self._call(self.contract.functions.allowlist()))

    def seats(self) -> list[str]:
        return list(self._call(self.contract.functions.seats()))

    def threshold(self) -> int:
        return int(self._call(self.contract.functions.threshold()))

    def proposal(self, proposal_id: int) -> Proposal:
        p = self._call(self.contract.functions.getProposal(proposal_id))
        return Proposal(proposal_id, p[0], Role(p[1]), p[2], p[3], p[4], p[5], p[6], p[7], p[8])

    def approvals(self, proposal_id: int) -> int:
        return int(self._call(self.contract.functions.approvals(proposal_id)))

    def _proposal_id(self, receipt: TxReceipt) -> int:
        return int(self._events(receipt, "ProposalCreated")[0]["args"]["proposalId"])


# --------------------------------------------------------------------------- ConsentRegistry


class ConsentRegistryClient(_ContractClient):
    NAME = "ConsentRegistry"

    def grant_call(self, grant: Grant, signature: bytes) -> ContractFunction:
        return self.contract.functions.grantBySig(grant.as_tuple(), signature)

    def grant_batch_call(self, grants: Sequence[tuple[Grant, bytes]]) -> ContractFunction:
        """grantBatchBySig: each grant as grantBySig would take it; a failing item is skipped."""
        return self.contract.functions.grantBatchBySig(
            [g.as_tuple() for g, _ in grants], [signature for _, signature in grants]
        )

    def grant_batch_data(self, grants: Sequence[tuple[Grant, bytes]]) -> bytes:
        """grantBatchBySig()'s calldata, encoded with eth_abi directly (web3's contract-function
        path normalises every field of a hundred grants, twice: to estimate and to build)."""
        return _GRANT_BATCH + abi_encode(
            [_GRANT_TUPLES, "bytes[]"], [[g.as_tuple() for g, _ in grants], [sig for _, sig in grants]]
        )

    def granted_all(self, receipt: TxReceipt) -> list[GrantedEvent]:
        """Every ConsentGranted of a receipt, in log order (a batch grants some of its items),
        decoded by hand from the raw logs: three topics and six static words."""
        found = []
        for entry in receipt["logs"]:
            topics = [_bytes(t) for t in entry["topics"]]
            if len(topics) != 4 or topics[0] != _CONSENT_GRANTED:
                continue
            if str(entry["address"]).lower() != self.address.lower():
                continue
            data = _bytes(entry["data"])
            index, categories, purposes, valid_from, valid_until = (
                int.from_bytes(data[i : i + 32], "big") for i in range(0, 160, 32)
            )
            found.append(
                GrantedEvent(
                    topics[1],
                    checksum(topics[2][12:]),
                    checksum(topics[3][12:]),
                    index,
                    categories,
                    purposes,
                    valid_from,
                    valid_until,
                )
            )
        return found

    def grant_batch_by_sig(self, by: Sender, grants: Sequence[tuple[Grant, bytes]]) -> list[GrantedEvent]:
        return self.granted_all(self._transact(by, self.grant_batch_call(grants)))

    def max_grant_batch(self) -> int:
        return int(self._call(self.contract.functions.maxGrantBatch()))

    def granted(self, receipt: TxReceipt) -> GrantReceipt:
        args = self._events(receipt, "ConsentGranted")[0]["args"]
        return GrantReceipt(bytes(args["consentId"]), int(args["index"]), TxInfo.of(receipt))

    def grant_by_sig(self, by: Sender, grant: Grant, signature: bytes) -> GrantReceipt:
        return self.granted(self._transact(by, self.grant_call(grant, signature)))

    def revoke_call(
        self, revocation: Revocation, grantee: str, index: int, signature: bytes
    ) -> ContractFunction:
        return self.contract.functions.revokeBySig(revocation.as_tuple(), grantee, index, signature)

    def revoke_by_sig(
        self, by: Sender, revocation: Revocation, grantee: str, index: int, signature: bytes
    ) -> TxInfo:
        return TxInfo.of(self._transact(by, self.revoke_call(revocation, grantee, index, signature)))

    def is_permitted(
        self, patient: str, grantee: str, category: int, purpose: int, *, block: int | None = None
    ) -> bytes | None:
        """The id of a consent that permits this (at `block`, else now), or None."""
        if block is not None and 0 <= category < 256 and 0 <= purpose < 256:
            args = [address_word(patient), address_word(grantee), uint_word(category), uint_word(purpose)]
            words = self.ledger.watcher.call(self.address, _IS_PERMITTED, args, block)
            if words is not None:
                return words[1] if int.from_bytes(words[0], "big") else None
        fn = self.contract.functions.isPermitted(patient, grantee, category, purpose)
        permitted, consent_id = self._call(fn, block)
        return bytes(consent_id) if permitted else None

    def permitted(self, patient: str, grantee: str, category: int, purpose: int, head: Head) -> bytes | None:
        """is_permitted at `head` (from Ledger.head()), with positive answers cached.

        A cached consent is used only while `head`'s timestamp lies in its validity window,
        and the cache is emptied whenever a ConsentRevoked event is mined: Ledger.head()
        reads the new blocks' events before it hands out a newer head, so no read checked at
        or after a revocation's block can see a consent it revoked."""
        watcher = self.ledger.watcher
        key = (patient.lower(), grantee.lower(), category, purpose)
        hit = watcher.consents.get(key)
        # Only at or after the block it was learned at: a reader holding an older head may not
        # see a consent granted since (the soak caught one "checked before it was granted").
        if (
            hit is not None
            and head.number >= hit.learned_at
            and hit.valid_from <= head.timestamp < hit.valid_until
        ):
            return hit.consent_id
        consent_id = self.is_permitted(patient, grantee, category, purpose, block=head.number)
        if consent_id is None:
            return None
        index = consent_index(patient, grantee, consent_id)
        if index is not None:
            stored = self.get_consent(patient, grantee, index, block=head.number)
            if not stored.revoked:
                watcher.remember(
                    watcher.consents,
                    key,
                    _Permit(consent_id, stored.valid_from, stored.valid_until, head.number),
                    head,
                )
        return consent_id

    def get_consent(
        self, patient: str, grantee: str, index: int, *, block: int | None = None
    ) -> StoredConsent:
        if block is not None:
            args = [address_word(patient), address_word(grantee), uint_word(index)]
            words = self.ledger.watcher.call(self.address, _GET_CONSENT, args, block)
            if words is not None and len(words) == 5:
                n = [int.from_bytes(w, "big") for w in words]
                return StoredConsent(n[0], n[1], n[2], n[3], bool(n[4]))
        c = self._call(self.contract.functions.getConsent(patient, grantee, index), block)
        return StoredConsent(*c)

    def consent_count(self, patient: str, grantee: str) -> int:
        return int(self._call(self.contract.functions.consentCount(patient, grantee)))

    def consent_id_of(self, patient: str, grantee: str, index: int) -> bytes:
        return bytes(self._call(self.contract.functions.consentIdOf(patient, grantee, index)))

    def grant_digest(self, grant: Grant) -> bytes:
        return bytes(self._call(self.contract.functions.grantDigest(grant.as_tuple())))

    def revocation_digest(self, revocation: Revocation) -> bytes:
        return bytes(self._call(self.contract.functions.revocationDigest(revocation.as_tuple())))

    def nonce_used(self, owner: str, nonce: int) -> bool:
        return bool(self._call(self.contract.functions.nonceUsed(owner, nonce)))

    def history(self, patient: str) -> list[ConsentEvent]:
        """Every grant and revocation of `patient`, in chain order."""
        filters = {"patient": Web3.to_checksum_address(patient)}
        events: list[ConsentEvent] = []
        for name in ("ConsentGranted", "ConsentRevoked"):
            for e in self._logs(name, filters):
                a = e["args"]
                events.append(
                    ConsentEvent(
                        kind="granted" if name == "ConsentGranted" else "revoked",
                        consent_id=bytes(a["consentId"]),
                        patient=a["patient"],
                        grantee=a["grantee"],
                        index=int(a.get("index", -1)),
                        categories=int(a.get("categories", 0)),
                        purposes=int(a.get("purposes", 0)),
                        valid_from=int(a.get("validFrom", 0)),
                        valid_until=int(a.get("validUntil", 0)),
                        block_number=int(e["blockNumber"]),
                        tx_hash=e["transactionHash"].to_0x_hex(),
                    )
                )
        return sorted(events, key=lambda ev: ev.block_number)


# --------------------------------------------------------------------------- RecordRegistry


class RecordRegistryClient(_ContractClient):
    NAME = "RecordRegistry"

    def enroll_call(self, enrollment: Enrollment, signature: bytes) -> ContractFunction:
        return self.contract.functions.enrollBySig(enrollment.as_tuple(), signature)

    def enroll_by_sig(self, by: Sender, enrollment: Enrollment, signature: bytes) -> TxInfo:
        return TxInfo.of(self._transact(by, self.enroll_call(enrollment, signature)))

    @staticmethod
    def leaf_order(records: Sequence[RecordEntry]) -> list[RecordEntry]:
        """The order the contract gives a batch's leaves: grouped by patient, first seen first."""
        groups: dict[str, list[RecordEntry]] = {}
        for r in records:
            groups.setdefault(Web3.to_checksum_address(r.patient), []).append(r)
        return [r for entries in groups.values() for r in entries]

    def anchor_call(self, records: Sequence[RecordEntry]) -> ContractFunction:
        groups: dict[str, list[tuple[int, bytes, bytes]]] = {}
        for r in self.leaf_order(records):
            groups.setdefault(Web3.to_checksum_address(r.patient), []).append(
                (r.category, r.commitment, r.supersedes)
            )
        return self.contract.functions.anchor(list(groups.items()))

    @staticmethod
    def anchor_data(records: Sequence[RecordEntry]) -> bytes:
        """anchor()'s calldata, written word by word: web3's contract-function path normalises
        every one of a thousand nested tuples (about a second a batch), and eth_abi's encoder
        still cost a few milliseconds (tests hold this to eth_abi's bytes)."""
        groups: dict[str, list[RecordEntry]] = {}
        for r in records:  # first seen first, as leaf_order
            groups.setdefault(r.patient.lower(), []).append(r)
        heads: list[bytes] = []
        bodies: list[bytes] = []
        offset = 32 * len(groups)  # PatientRecords tuples are dynamic: each one's offset first
        for patient, entries in groups.items():
            body = b"".join(
                [address_word(patient), uint_word(0x40), uint_word(len(entries))]
                + [
                    uint_word(r.category, 8) + bytes32_word(r.commitment) + bytes32_word(r.supersedes)
                    for r in entries
                ]
            )
            heads.append(uint_word(offset))
            bodies.append(body)
            offset += len(body)
        return b"".join([_ANCHOR, uint_word(0x20), uint_word(len(groups)), *heads, *bodies])

    def anchored_batch(self, receipt: TxReceipt) -> tuple[int, bytes]:
        """(batch id, root) of the batch a receipt anchored (read from its one
        RecordBatchAnchored log, without decoding the thousand RecordAnchored beside it)."""
        for entry in receipt["logs"]:
            topics = [_bytes(t) for t in entry["topics"]]
            if (
                topics
                and topics[0] == _BATCH_ANCHORED
                and str(entry["address"]).lower() == self.address.lower()
            ):
                return int.from_bytes(topics[1], "big"), _bytes(entry["data"])[:32]
        raise errors.ChainError("the receipt has no RecordBatchAnchored event")

    def anchor(self, by: Sender, custodian: str, records: Sequence[RecordEntry]) -> AnchorReceipt:
        """Anchor one batch; records are grouped by patient, keeping first-seen order."""
        receipt = self._transact(by, self.anchor_call(records))
        batch_id, root = self.anchored_batch(receipt)
        anchored = [
            merkle.AnchoredRecord.of(batch_id, custodian, r.patient, r.category, r.commitment, r.supersedes)
            for r in self.leaf_order(records)
        ]
        return AnchorReceipt(batch_id, root, anchored, TxInfo.of(receipt))

    def erase_call(
        self, erasure: Erasure, record: merkle.AnchoredRecord, proof: Sequence[bytes], signature: bytes
    ) -> ContractFunction:
        return self.contract.functions.eraseBySig(
            erasure.as_tuple(), record.as_tuple(), list(proof), signature
        )

    def erase_by_sig(
        self,
        by: Sender,
        erasure: Erasure,
        record: merkle.AnchoredRecord,
        proof: Sequence[bytes],
        signature: bytes,
    ) -> TxInfo:
        return TxInfo.of(self._transact(by, self.erase_call(erasure, record, proof, signature)))

    def anchored(self, record_id: bytes) -> merkle.AnchoredRecord | None:
        """A record as its RecordAnchored event tells it (batch id unknown here: -1), or None."""
        logs = self._logs("RecordAnchored", {"recordId": record_id})
        return _anchored(logs[0]["args"]) if logs else None

    def anchored_for(self, patient: str) -> list[merkle.AnchoredRecord]:
        """Every record anchored for a pseudonym, in chain order (batch id unknown: -1)."""
        logs = self._logs("RecordAnchored", {"patient": Web3.to_checksum_address(patient)})
        return [_anchored(e["args"]) for e in logs]

    def anchored_by(self, custodian: str) -> list[AnchoredEvent]:
        """Every record `custodian` anchored, in chain order, with its batch id.

        RecordAnchored does not index the custodian, so every such event is read and filtered
        here; the batch ids come from the custodian's RecordBatchAnchored events (one per
        anchoring transaction)."""
        custodian = Web3.to_checksum_address(custodian)
        batches = {
            e["transactionHash"]: int(e["args"]["batchId"])
            for e in self._logs("RecordBatchAnchored", {"custodian": custodian})
        }
        return [
            AnchoredEvent(
                replace(_anchored(e["args"]), batch_id=batches.get(e["transactionHash"], -1)),
                int(e["blockNumber"]),
                e["transactionHash"].to_0x_hex(),
            )
            for e in self._logs("RecordAnchored", {})
            if e["args"]["custodian"] == custodian
        ]

    def erased_by(self, custodian: str) -> list[ErasedEvent]:
        """Every erasure marked on chain for records of `custodian`, in chain order."""
        return [
            ErasedEvent(
                bytes(e["args"]["recordId"]),
                e["args"]["patient"],
                e["args"]["custodian"],
                int(e["args"]["batchId"]),
                int(e["blockNumber"]),
                e["transactionHash"].to_0x_hex(),
            )
            for e in self._logs("RecordErased", {"custodian": Web3.to_checksum_address(custodian)})
        ]

    def enrollment_of(self, patient: str, custodian: str) -> bytes | None:
        value = bytes(self._call(self.contract.functions.enrollmentOf(patient, custodian)))
        return None if value == b"\x00" * 32 else value

    def batch_root(self, batch_id: int) -> bytes:
        return bytes(self._call(self.contract.functions.batchRoot(batch_id)))

    def batch_count(self) -> int:
        return int(self._call(self.contract.functions.batchCount()))

    def is_erased(self, record_id: bytes) -> bool:
        return bool(self._call(self.contract.functions.isErased(record_id)))

    def leaf_hash(self, record: merkle.AnchoredRecord) -> bytes:
        return bytes(self._call(self.contract.functions.leafHash(record.as_tuple())))

    def enrollment_digest(self, enrollment: Enrollment) -> bytes:
        return bytes(self._call(self.contract.functions.enrollmentDigest(enrollment.as_tuple())))

    def erasure_digest(self, erasure: Erasure) -> bytes:
        return bytes(self._call(self.contract.functions.erasureDigest(erasure.as_tuple())))


# --------------------------------------------------------------------------- AccessLog


class AccessLogClient(_ContractClient):
    NAME = "AccessLog"

    def log_data(self, entries: Sequence[Disclosure]) -> bytes:
        """log()'s calldata, encoded with eth_abi directly (see RecordRegistryClient.anchor_data)."""
        return _LOG + abi_encode([_LOG_ARGS], [[e.as_tuple() for e in entries]])

    def log_call(self, entries: Sequence[Disclosure]) -> ContractFunction:
        return self.contract.functions.log([e.as_tuple() for e in entries])

    def logged(self, receipt: TxReceipt) -> LogReceipt:
        args = self._events(receipt, "AccessBatchLogged")[0]["args"]
        return LogReceipt(int(args["batchId"]), int(args["count"]), TxInfo.of(receipt))

    def log(self, by: Sender, entries: Sequence[Disclosure]) -> LogReceipt:
        return self.logged(self._transact(by, self.log_call(entries)))

    def entries_for(self, record_ids: Sequence[bytes]) -> list[LoggedDisclosure]:
        """Every disclosure logged for these records, in chain order."""
        found: list[LoggedDisclosure] = []
        for start in range(0, len(record_ids), 100):  # keep each topic filter a sane size
            chunk = list(record_ids[start : start + 100])
            for e in self._logs("AccessLogged", {"recordId": chunk}):
                a = e["args"]
                found.append(
                    LoggedDisclosure(
                        record_id=bytes(a["recordId"]),
                        requester=a["requester"],
                        purpose=int(a["purpose"]),
                        break_glass=bool(a["breakGlass"]),
                        checked_block=int(a["checkedBlock"]),
                        basis=bytes(a["basis"]),
                        request_hash=bytes(a["requestHash"]),
                        signature=expand_signature(bytes(a["sigR"]), bytes(a["sigVS"])),
                        block_number=int(e["blockNumber"]),
                        tx_hash=e["transactionHash"].to_0x_hex(),
                    )
                )
        return sorted(found, key=lambda d: d.block_number)

    def max_check_lag(self) -> int:
        return int(self._call(self.contract.functions.maxCheckLag()))

    def batch_count(self) -> int:
        return int(self._call(self.contract.functions.batchCount()))

    def entry_count(self) -> int:
        return int(self._call(self.contract.functions.entryCount()))


# --------------------------------------------------------------------------- facade


class Ledger:
    """The four contracts of one deployment on one chain."""

    def __init__(self, w3: Web3, deployment: Deployment, *, rpc_timeout: float = 10.0) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.rpc_timeout = rpc_timeout
        self.decoder = RevertDecoder(c.abi for c in deployment.contracts.values())
        self.members = MemberRegistryClient(self)
        self.consents = ConsentRegistryClient(self)
        self.records = RecordRegistryClient(self)
        self.access = AccessLogClient(self)
        self.rpc = RawRpc(str(getattr(w3.provider, "endpoint_uri", "")), rpc_timeout)
        self.watcher = HeadWatcher(self)
        # How old a head may be when it is handed out (a gateway sets it from its settings).
        self.head_max_age_s = 0.0

    def head(self) -> Head:
        """The chain's head block, after the caches have seen every event up to it, as read
        at most `head_max_age_s` before this call (0, the default: read after it began)."""
        return self.watcher.head(self.head_max_age_s)

    @classmethod
    def connect(cls, rpc_url: str, deployment: Deployment, *, timeout: float = 10.0) -> Ledger:
        w3 = connect(rpc_url, timeout=timeout)
        deployment.check_chain(w3)
        return cls(w3, deployment, rpc_timeout=timeout)

    def sender(self, private_key: bytes | str) -> Sender:
        return Sender(self.w3, Account.from_key(private_key), self.decoder, rpc=self.rpc)

    @property
    def consent_domain(self) -> Domain:
        return Domain(CONSENT_DOMAIN, self.deployment.chain_id, self.deployment.address("ConsentRegistry"))

    @property
    def record_domain(self) -> Domain:
        return Domain(RECORD_DOMAIN, self.deployment.chain_id, self.deployment.address("RecordRegistry"))

    def block_timestamp(self, number: int) -> int:
        try:
            return int(self.w3.eth.get_block(number)["timestamp"])
        except (OSError, ConnectionError) as exc:
            raise errors.ChainUnavailable(f"chain unreachable: {exc}") from None

    def block_number(self) -> int:
        try:
            return int(self.w3.eth.block_number)
        except (OSError, ConnectionError) as exc:
            raise errors.ChainUnavailable(f"chain unreachable: {exc}") from None


class Head(NamedTuple):
    number: int
    timestamp: int
    generation: int  # of the caches, when this head was handed out


class _Permit(NamedTuple):
    consent_id: bytes
    valid_from: int
    valid_until: int
    learned_at: int  # the head block it was read at


MAX_CONSENTS_PER_PAIR = 64
_ANCHOR_ARGS = "(address,(uint8,bytes32,bytes32)[])[]"
_ANCHOR = keccak(text=f"anchor({_ANCHOR_ARGS})")[:4]
_BATCH_ANCHORED = keccak(text="RecordBatchAnchored(uint256,address,bytes32,uint256,address)")
_LOG_ARGS = "(bytes32,uint256,bytes32,bytes32,bytes32,bytes32)[]"
_LOG = keccak(text=f"log({_LOG_ARGS})")[:4]


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _bytes(value: Any) -> bytes:
    return bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)


_ACTIVE_SIGNER = keccak(text="activeSigner(address)")[:4]
_IS_PERMITTED = keccak(text="isPermitted(address,address,uint8,uint8)")[:4]
_GRANT_TUPLES = "(address,address,uint16,uint8,uint40,uint40,uint256,uint256)[]"
_GRANT_BATCH = keccak(text=f"grantBatchBySig({_GRANT_TUPLES},bytes[])")[:4]
_CONSENT_GRANTED = keccak(
    text="ConsentGranted(bytes32,address,address,uint256,uint16,uint8,uint40,uint40,address)"
)
_GET_CONSENT = keccak(text="getConsent(address,address,uint256)")[:4]


def _address(word: bytes) -> str:
    return "0x" + word[12:].hex()


def consent_index(patient: str, grantee: str, consent_id: bytes) -> int | None:
    """The index of a consent id (ConsentHashes.consentId: keccak(patient, grantee, index))."""
    for index in range(MAX_CONSENTS_PER_PAIR):
        if keccak(abi_encode(["address", "address", "uint256"], [patient, grantee, index])) == consent_id:
            return index
    return None


class HeadWatcher:
    """The head block, and the caches that stay right only as long as certain events are
    absent: consents (emptied by any ConsentRevoked) and signers (by any MemberRegistry
    event). Advancing the head reads the new blocks' events first, in one eth_getLogs."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._fetching = False
        self._completed_started = float("-inf")
        self._refresher: threading.Thread | None = None
        self._refresh_wanted = threading.Event()
        self._head: Head | None = None
        self.generation = 0
        self.consents: dict[tuple[str, str, int, int], _Permit] = {}
        self.signers: dict[str, tuple[str | None, Role]] = {}
        self.statuses: dict[str, MemberStatus] = {}
        self._consent_registry = ledger.deployment.address("ConsentRegistry").lower()
        self._member_registry = ledger.deployment.address("MemberRegistry").lower()
        self._revoked_topic = "0x" + keccak(text="ConsentRevoked(bytes32,address,address,address)").hex()

    def head(self, max_age_s: float = 0.0) -> Head:
        """The head as the chain has it: read by an eth_blockNumber sent at most `max_age_s`
        before this call began — its own, or one another thread sent (concurrent callers
        share it). With `max_age_s` 0 the read starts after this call did. A head past half
        its allowed age is refreshed in the background, so busy callers rarely wait for the
        chain. The new blocks' events are applied to the caches before a head is handed out."""
        arrived = time.monotonic()
        with self._cond:
            while True:
                if self._head is not None and self._completed_started >= arrived - max_age_s:
                    if max_age_s and self._completed_started < arrived - max_age_s / 2:
                        self._refresh_soon()
                    return self._head
                if not self._fetching:
                    self._fetching = True
                    break
                self._cond.wait()
        return self._fetch()

    def reached(self, block: int) -> None:
        """This process saw `block` mined (e.g. a transaction it relayed): no head older than
        it is handed out from now on, whatever age is allowed."""
        with self._cond:
            if self._head is None or self._head.number < block:
                self._completed_started = float("-inf")

    def _fetch(self) -> Head:
        """Read the head (the caller set _fetching); wakes every caller waiting for it."""
        started, ok = time.monotonic(), False
        try:
            number = int(self._rpc("eth_blockNumber", []), 16)
            current = self._head
            if current is None or number > current.number:
                if current is None:
                    with self._lock:
                        self._clear()
                else:
                    self._apply(current.number + 1, number)
                block = self._rpc("eth_getBlockByNumber", [hex(number), False])
                with self._lock:
                    self._head = Head(number, int(block["timestamp"], 16), self.generation)
            ok = True
        finally:
            with self._cond:
                self._fetching = False
                if ok:
                    self._completed_started = started
                self._cond.notify_all()
        assert self._head is not None
        return self._head

    def _refresh_soon(self) -> None:
        """Ask the refresher thread for a new head (called holding the lock)."""
        if self._fetching:
            return
        self._fetching = True
        if self._refresher is None:
            self._refresher = threading.Thread(target=self._refresh, name="head-refresh", daemon=True)
            self._refresher.start()
        self._refresh_wanted.set()

    def _refresh(self) -> None:
        while True:
            self._refresh_wanted.wait()
            self._refresh_wanted.clear()
            # This thread must outlive any one failure; the next caller past the allowed age
            # reads the head itself, and fails loudly.
            with contextlib.suppress(Exception):
                self._fetch()

    def call(self, to: str, selector: bytes, args: list[bytes], block: int) -> list[bytes] | None:
        """An eth_call of a function with static arguments and results, encoded and decoded
        by hand (web3's contract call costs tens of times more); None if the call reverted."""
        data = "0x" + (selector + b"".join(args)).hex()
        try:
            result = self._rpc("eth_call", [{"to": to, "data": data}, hex(block)])
        except errors.ChainUnavailable as exc:
            if "revert" in str(exc).lower() or "execution" in str(exc).lower():
                return None
            raise
        raw = bytes.fromhex(str(result).removeprefix("0x"))
        return [raw[i : i + 32] for i in range(0, len(raw), 32)]

    def remember(self, cache: dict[Any, Any], key: Any, value: Any, head: Head) -> None:
        """Cache `value`, computed at `head`, unless an invalidation came since."""
        with self._lock:
            if self.generation == head.generation:
                cache[key] = value

    def _apply(self, first: int, last: int) -> None:
        logs = self._rpc(
            "eth_getLogs",
            [{"fromBlock": hex(first), "toBlock": hex(last),
              "address": [self._consent_registry, self._member_registry]}],
        )  # fmt: skip
        revoked = any(
            str(e["address"]).lower() == self._consent_registry and e["topics"][:1] == [self._revoked_topic]
            for e in logs
        )
        members = any(str(e["address"]).lower() == self._member_registry for e in logs)
        if revoked or members:
            with self._lock:
                self.generation += 1
                if revoked:
                    self.consents.clear()
                if members:
                    self.signers.clear()
                    self.statuses.clear()

    def _clear(self) -> None:
        self.generation += 1
        self.consents.clear()
        self.signers.clear()
        self.statuses.clear()

    def _rpc(self, method: str, params: list[Any]) -> Any:
        return self.ledger.rpc.ask(method, params)


def connect(rpc_url: str, *, timeout: float = 10.0) -> Web3:
    """A web3 connection that fails fast with ChainUnavailable when nobody answers."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018 - probe the endpoint once
    except (OSError, ConnectionError) as exc:
        raise errors.ChainUnavailable(f"no JSON-RPC answer from {rpc_url}: {exc}") from None
    return w3


def _anchored(args: Any) -> merkle.AnchoredRecord:
    return merkle.AnchoredRecord(
        -1,
        args["patient"],
        args["custodian"],
        bytes(args["recordId"]),
        int(args["category"]),
        bytes(args["commitment"]),
        bytes(args["supersedes"]),
    )


ERC1271_MAGIC = bytes.fromhex("1626ba7e")
_ERC1271_ABI = [
    {
        "type": "function",
        "name": "isValidSignature",
        "stateMutability": "view",
        "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
        "outputs": [{"name": "magicValue", "type": "bytes4"}],
    }
]


def erc1271_valid(w3: Web3, account: str, digest: bytes, signature: bytes) -> bool:
    """Whether contract `account` accepts `signature` over `digest` (ERC-1271); False for EOAs."""
    address = Web3.to_checksum_address(account)
    try:
        if len(w3.eth.get_code(address)) == 0:
            return False
        wallet = w3.eth.contract(address=address, abi=_ERC1271_ABI)
        return bytes(wallet.functions.isValidSignature(digest, signature).call()) == ERC1271_MAGIC
    except ContractLogicError:
        return False
    except (OSError, ConnectionError) as exc:
        raise errors.ChainUnavailable(f"chain unreachable: {exc}") from None
