"""Calldata written by hand, held to eth_abi's encoding of the same arguments."""

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.chain.clients import RecordEntry, RecordRegistryClient

ANCHOR_ARGS = "(address,(uint8,bytes32,bytes32)[])[]"
SELECTOR = keccak(text=f"anchor({ANCHOR_ARGS})")[:4]

_patients = st.sampled_from(["0x" + f"{n:02x}" * 20 for n in (1, 2, 0xAB, 0xFF)])
_entries = st.builds(
    RecordEntry,
    patient=_patients,
    category=st.integers(0, 255),
    commitment=st.binary(min_size=32, max_size=32),
    supersedes=st.binary(min_size=32, max_size=32),
)


def _eth_abi(records: list[RecordEntry]) -> bytes:
    groups: dict[str, list[tuple[int, bytes, bytes]]] = {}
    for r in records:
        groups.setdefault(r.patient.lower(), []).append((r.category, r.commitment, r.supersedes))
    return SELECTOR + encode([ANCHOR_ARGS], [list(groups.items())])


@settings(max_examples=200, deadline=None)
@given(st.lists(_entries, min_size=1, max_size=40))
def test_anchor_data_is_eth_abis_encoding(records: list[RecordEntry]) -> None:
    assert RecordRegistryClient.anchor_data(records) == _eth_abi(records)


def test_anchor_data_refuses_values_its_types_cannot_hold() -> None:
    good = RecordEntry("0x" + "01" * 20, 3, b"\x11" * 32)
    assert RecordRegistryClient.anchor_data([good]) == _eth_abi([good])
    with pytest.raises(ValueError, match="uint8"):
        RecordRegistryClient.anchor_data([RecordEntry(good.patient, 256, good.commitment)])
    with pytest.raises(ValueError, match="32 bytes"):
        RecordRegistryClient.anchor_data([RecordEntry(good.patient, 3, b"\x11" * 31)])
