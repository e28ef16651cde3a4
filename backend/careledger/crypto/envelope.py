"""Envelope encryption of records: AES-256-GCM, a fresh data key per record.

The data key is wrapped by the custodian's key-encryption key (KEK); associated data binds
the ciphertext and the wrapped key to the record id and version, so neither can be moved
to another record. Every failure to open raises the same DecryptionFailed, with no detail.
Randomness is a parameter so that tests are deterministic.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from careledger.errors import DecryptionFailed

KEY_BYTES = 32
NONCE_BYTES = 12
RandomBytes = Callable[[int], bytes]


class KeyEncryptionKey(Protocol):
    """What wraps data keys: a key file here; a KMS can implement the same two calls."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes: ...


class AesGcmKek:
    """A 256-bit KEK held in memory; wrap = AES-256-GCM(nonce ‖ ciphertext ‖ tag)."""

    def __init__(self, key: bytes, key_id: str, *, random_bytes: RandomBytes = os.urandom) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a key-encryption key is 32 bytes")
        self._aead = AESGCM(key)
        self._raw = key
        self._key_id = key_id
        self._random = random_bytes

    @property
    def raw(self) -> bytes:
        """The key itself: for writing the key file only."""
        return self._raw

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        nonce = self._random(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, b"careledger-dek\x00" + aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], b"careledger-dek\x00" + aad
            )
        except (InvalidTag, ValueError):
            raise DecryptionFailed("cannot open") from None


@dataclass(frozen=True)
class Sealed:
    """A record's ciphertext (nonce ‖ ciphertext ‖ tag) and its wrapped data key."""

    ciphertext: bytes
    wrapped_key: bytes
    key_id: str


def record_aad(record_key: bytes, version: int) -> bytes:
    """Associated data that binds a ciphertext to one version of one record.

    `record_key` names the record logically (custodian, patient, resource type and id):
    the on-chain record id cannot serve, as it derives from the commitment, which derives
    from the ciphertext.
    """
    return (
        b"careledger-record\x00"
        + len(record_key).to_bytes(2, "big")
        + record_key
        + version.to_bytes(8, "big")
    )


def seal(
    plaintext: bytes, aad: bytes, kek: KeyEncryptionKey, *, random_bytes: RandomBytes = os.urandom
) -> Sealed:
    data_key = random_bytes(KEY_BYTES)
    nonce = random_bytes(NONCE_BYTES)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)
    return Sealed(ciphertext, kek.wrap(data_key, aad), kek.key_id)


def open_(sealed: Sealed, aad: bytes, kek: KeyEncryptionKey) -> bytes:
    data_key = kek.unwrap(sealed.wrapped_key, aad)
    try:
        return AESGCM(data_key).decrypt(sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise DecryptionFailed("cannot open") from None


def rewrap(wrapped_key: bytes, aad: bytes, old: KeyEncryptionKey, new: KeyEncryptionKey) -> bytes:
    """Key rotation: the same data key under a new KEK; the ciphertext is untouched."""
    return new.wrap(old.unwrap(wrapped_key, aad), aad)


@dataclass(frozen=True)
class SealedRecord:
    """A record sealed for storage: its content, and its salt and plaintext digest (`meta`),
    each under the record's own data key, which the KEK wraps."""

    ciphertext: bytes
    sealed_meta: bytes
    wrapped_key: bytes
    key_id: str


@dataclass(frozen=True)
class OpenedMeta:
    salt: bytes
    plaintext_sha256: bytes


_META = b"\x00careledger-meta"


def seal_record(
    plaintext: bytes,
    salt: bytes,
    aad: bytes,
    kek: KeyEncryptionKey,
    *,
    random_bytes: RandomBytes = os.urandom,
    plaintext_sha256: bytes | None = None,
) -> SealedRecord:
    """Seal a record's content and its commitment secrets (salt, sha256 of the plaintext;
    pass `plaintext_sha256` if it is at hand)."""
    fresh = random_bytes(KEY_BYTES + 2 * NONCE_BYTES)  # one call: ingest seals thousands a second
    data_key, nonce, meta_nonce = fresh[:KEY_BYTES], fresh[KEY_BYTES:-NONCE_BYTES], fresh[-NONCE_BYTES:]
    aead = AESGCM(data_key)
    ciphertext = nonce + aead.encrypt(nonce, plaintext, aad)
    digest = plaintext_sha256 if plaintext_sha256 is not None else hashlib.sha256(plaintext).digest()
    if len(digest) != 32:
        raise ValueError("plaintext_sha256 is a 32-byte SHA-256 digest")
    meta = meta_nonce + aead.encrypt(meta_nonce, salt + digest, aad + _META)
    return SealedRecord(ciphertext, meta, kek.wrap(data_key, aad), kek.key_id)


def open_record(sealed: SealedRecord, aad: bytes, kek: KeyEncryptionKey) -> tuple[bytes, OpenedMeta]:
    """The plaintext and commitment secrets of a sealed record."""
    data_key = kek.unwrap(sealed.wrapped_key, aad)
    return _open(data_key, sealed.ciphertext, aad), _meta(data_key, sealed.sealed_meta, aad)


def open_meta(sealed_meta: bytes, wrapped_key: bytes, aad: bytes, kek: KeyEncryptionKey) -> OpenedMeta:
    """Only the salt and plaintext digest: what an auditor is handed, never the plaintext."""
    return _meta(kek.unwrap(wrapped_key, aad), sealed_meta, aad)


def _open(data_key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(data_key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise DecryptionFailed("cannot open") from None


def _meta(data_key: bytes, sealed_meta: bytes, aad: bytes) -> OpenedMeta:
    raw = _open(data_key, sealed_meta, aad + _META)
    if len(raw) != 64:
        raise DecryptionFailed("cannot open")
    return OpenedMeta(raw[:32], raw[32:])
