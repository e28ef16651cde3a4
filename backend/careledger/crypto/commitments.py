"""Record commitments: keccak256(salt ‖ sha256(plaintext) ‖ sha256(ciphertext)).

A reader given the salt and sha256(ciphertext) checks the plaintext it received; an
auditor given the ciphertext, the salt and sha256(plaintext) checks the stored blob;
neither needs the other's secret.
"""

from __future__ import annotations

import hashlib
import hmac

from careledger.hashing import keccak256

SALT_BYTES = 32


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def commitment_from_digests(salt: bytes, plaintext_sha256: bytes, ciphertext_sha256: bytes) -> bytes:
    if len(salt) != SALT_BYTES or len(plaintext_sha256) != 32 or len(ciphertext_sha256) != 32:
        raise ValueError("salt and digests are 32 bytes each")
    return keccak256(salt + plaintext_sha256 + ciphertext_sha256)


def commit(salt: bytes, plaintext: bytes, ciphertext: bytes) -> bytes:
    return commitment_from_digests(salt, sha256(plaintext), sha256(ciphertext))


def check_plaintext(commitment: bytes, salt: bytes, plaintext: bytes, ciphertext_sha256: bytes) -> bool:
    """The reader's check: does this plaintext match the anchored commitment?"""
    return hmac.compare_digest(
        commitment_from_digests(salt, sha256(plaintext), ciphertext_sha256), commitment
    )


def check_ciphertext(commitment: bytes, salt: bytes, plaintext_sha256: bytes, ciphertext: bytes) -> bool:
    """The auditor's check: does this stored blob match the anchored commitment?"""
    return hmac.compare_digest(
        commitment_from_digests(salt, plaintext_sha256, sha256(ciphertext)), commitment
    )
