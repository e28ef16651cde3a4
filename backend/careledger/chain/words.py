"""ABI words written by hand on hot paths (anchor calldata, Merkle leaves, EIP-712 digests):
each static value as its 32-byte word, ValueError if it does not fit its type. eth_abi's
encoder does the same at several times the cost; tests hold these to its bytes."""

from __future__ import annotations

from typing import Any


def address_word(address: str) -> bytes:
    """A 20-byte address, left-padded; the hex in any case (no EIP-55 checksum asked)."""
    raw = bytes.fromhex(str(address).removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"not an address: {address!r}")
    return bytes(12) + raw


def bytes32_word(value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(
            f"a bytes32 value has 32 bytes, not {len(value) if isinstance(value, bytes) else value!r}"
        )
    return value


def uint_word(value: Any, bits: int = 256) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise ValueError(f"{value!r} does not fit uint{bits}")
    return value.to_bytes(32, "big")
