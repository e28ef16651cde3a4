"""The record batch Merkle tree exactly as RecordRegistry builds it (contracts/libraries/MerkleRoot.sol).

Sorted-pair keccak256 at every level, an odd last node moved up unhashed, leaves hashed
once (192-byte preimages); proofs verify with OpenZeppelin's MerkleProof.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from careledger.chain.words import address_word, bytes32_word, uint_word
from careledger.hashing import checksum_text, keccak256


@dataclass(frozen=True)
class AnchoredRecord:
    """A record as it stands in its batch's tree (the contract's AnchoredRecord struct)."""

    batch_id: int
    patient: str
    custodian: str
    record_id: bytes
    category: int
    commitment: bytes
    supersedes: bytes

    @classmethod
    def of(
        cls, batch_id: int, custodian: str, patient: str, category: int, commitment: bytes, supersedes: bytes
    ) -> AnchoredRecord:
        """A record as anchored, its id derived as the contract derives it."""
        custodian, patient = checksum_text(custodian), checksum_text(patient)
        record_id = record_id_of(custodian, patient, commitment)
        return cls(batch_id, patient, custodian, record_id, category, commitment, supersedes)

    def leaf(self) -> bytes:
        return record_leaf(
            self.record_id, self.patient, self.custodian, self.category, self.commitment, self.supersedes
        )

    def as_tuple(self) -> tuple[int, str, str, bytes, int, bytes, bytes]:
        return (
            self.batch_id,
            self.patient,
            self.custodian,
            self.record_id,
            self.category,
            self.commitment,
            self.supersedes,
        )


def record_id_of(custodian: str, patient: str, commitment: bytes) -> bytes:
    """A record's id: keccak256(abi.encode(custodian, patient, commitment)), as RecordRegistry derives it."""
    return keccak256(address_word(custodian) + address_word(patient) + bytes32_word(commitment))


def anchored_leaf(custodian: str, patient: str, category: int, commitment: bytes, supersedes: bytes) -> bytes:
    """AnchoredRecord.of(...).leaf() without building the record: the addresses are used as
    words, in any case (no EIP-55 checksum, two keccaks a leaf, on the relayer's path)."""
    return record_leaf(
        record_id_of(custodian, patient, commitment), patient, custodian, category, commitment, supersedes
    )


def record_leaf(
    record_id: bytes, patient: str, custodian: str, category: int, commitment: bytes, supersedes: bytes
) -> bytes:
    """keccak256(abi.encode(recordId, patient, custodian, uint8 category, commitment, supersedes)),
    packed word by word (every field is static; eth_abi costs ~20 times as much per leaf)."""
    return keccak256(
        bytes32_word(record_id)
        + address_word(patient)
        + address_word(custodian)
        + uint_word(category, 8)
        + bytes32_word(commitment)
        + bytes32_word(supersedes)
    )


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b) if a < b else keccak256(b + a)


def levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, root last."""
    if not leaves:
        raise ValueError("a batch has at least one record")
    tree = [list(leaves)]
    while len(tree[-1]) > 1:
        level = tree[-1]
        parent = [_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            parent.append(level[-1])
        tree.append(parent)
    return tree


def root(leaves: Sequence[bytes]) -> bytes:
    return levels(leaves)[-1][0]


def proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Siblings of leaf `index` from the bottom up (none where a node moved up alone)."""
    siblings: list[bytes] = []
    for level in levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            siblings.append(level[sibling])
        index //= 2
    return siblings


def verify(leaf: bytes, siblings: Sequence[bytes], expected_root: bytes) -> bool:
    node = leaf
    for sibling in siblings:
        node = _pair(node, sibling)
    return node == expected_root
