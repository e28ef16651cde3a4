"""Ethereum signatures on secp256k1, straight through libsecp256k1 (coincurve).

eth-account's `_recover_hash` reaches the same library through eth-keys' object layers and
costs about twice as much; every signed request the gateway serves recovers one signature.
The rules are the ones OpenZeppelin's ECDSA applies on chain: 65 bytes r ‖ s ‖ v with
v = 27 or 28 and s in the lower half of the curve order (EIP-2), so what verifies here
verifies in the contracts too.
"""

from __future__ import annotations

from coincurve import PublicKey

from careledger.hashing import checksum, keccak256

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2
_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n"


def eip191_hash(message: bytes) -> bytes:
    """The EIP-191 version 0x45 (`personal_sign`) hash of a message."""
    return keccak256(_EIP191_PREFIX + str(len(message)).encode() + message)


def is_high_s(signature: bytes) -> bool:
    """Whether a 65-byte signature's s lies in the upper half of the order (refused by EIP-2)."""
    return int.from_bytes(signature[32:64], "big") > SECP256K1_HALF_N


def recover_address(digest: bytes, signature: bytes) -> str | None:
    """The EIP-55 address whose key made `signature` over the 32-byte `digest`, or None when
    the signature is malformed, high-s or recovers no key."""
    if len(signature) != 65 or len(digest) != 32 or signature[64] not in (27, 28) or is_high_s(signature):
        return None
    r = int.from_bytes(signature[:32], "big")
    if not 0 < r < SECP256K1_N or int.from_bytes(signature[32:64], "big") == 0:
        return None
    try:
        key = PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), digest, hasher=None
        )
    except ValueError:  # no point on the curve has this r
        return None
    return checksum(keccak256(key.format(compressed=False)[1:])[12:])
