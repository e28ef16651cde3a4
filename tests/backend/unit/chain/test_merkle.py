import os

import pytest
from eth_utils import keccak

from careledger.chain import merkle


def _leaves(n: int) -> list[bytes]:
    return [keccak(i.to_bytes(4, "big")) for i in range(n)]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100])
def test_proof_verifies_every_leaf(size: int) -> None:
    leaves = _leaves(size)
    root = merkle.root(leaves)
    for i, leaf in enumerate(leaves):
        assert merkle.verify(leaf, merkle.proof(leaves, i), root)


def test_proof_refuses_other_leaf() -> None:
    leaves = _leaves(9)
    root = merkle.root(leaves)
    assert not merkle.verify(keccak(b"stranger"), merkle.proof(leaves, 3), root)
    assert not merkle.verify(leaves[4], merkle.proof(leaves, 3), root)


def test_root_known_answer_for_three_leaves() -> None:
    a, b, c = _leaves(3)
    ab = keccak(min(a, b) + max(a, b))
    expected = keccak(min(ab, c) + max(ab, c))  # c moves up unhashed, then pairs with ab
    assert merkle.root([a, b, c]) == expected


def test_root_of_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        merkle.root([])


def test_record_id_depends_on_custodian_patient_and_commitment() -> None:
    commitment, custodian, patient = os.urandom(32), "0x" + "11" * 20, "0x" + "33" * 20
    a = merkle.record_id_of(custodian, patient, commitment)
    assert a == merkle.record_id_of(custodian, patient, commitment)
    assert a != merkle.record_id_of("0x" + "22" * 20, patient, commitment)
    assert a != merkle.record_id_of(custodian, "0x" + "44" * 20, commitment)
    assert a != merkle.record_id_of(custodian, patient, os.urandom(32))


def test_anchored_leaf_is_the_anchored_records_leaf_whatever_the_address_case() -> None:
    custodian, patient = "0x" + "ab" * 20, "0x" + "cd" * 20
    record = merkle.AnchoredRecord.of(7, "0x" + "AB" * 20, patient, 3, b"\x01" * 32, b"\x02" * 32)
    assert merkle.anchored_leaf(custodian, patient, 3, b"\x01" * 32, b"\x02" * 32) == record.leaf()
