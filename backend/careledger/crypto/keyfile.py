"""Key-encryption keys in a key file: one hex key per line, the first one current.

During a rotation the file holds the new key first and the old ones after it, so every
process can still open what the old keys wrapped; once everything is re-wrapped the file
is rewritten with the new key alone, and the old file's bytes are overwritten before it
goes, so the old keys are destroyed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from careledger.crypto.envelope import KEY_BYTES, AesGcmKek
from careledger.errors import DecryptionFailed, KeyFileError


class KeyRing:
    """The current KEK wraps; any KEK of the ring unwraps (the AEAD tag tells which fits)."""

    def __init__(self, keys: Sequence[AesGcmKek]) -> None:
        if not keys:
            raise KeyFileError("a key file holds at least one key")
        self.keys = list(keys)

    @property
    def key_id(self) -> str:
        return self.keys[0].key_id

    @property
    def key_ids(self) -> list[str]:
        return [k.key_id for k in self.keys]

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        return self.keys[0].wrap(data_key, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        for key in self.keys:
            try:
                return key.unwrap(wrapped, aad)
            except DecryptionFailed:
                continue
        raise DecryptionFailed("cannot open")


def key_id_of(key: bytes) -> str:
    """A fingerprint that names a key in logs and rows, never revealing it."""
    return "kek-" + hashlib.sha256(b"careledger-kek-id\x00" + key).hexdigest()[:16]


def new_key(random_bytes: Callable[[int], bytes] = os.urandom) -> bytes:
    return random_bytes(KEY_BYTES)


def create_key_file(path: Path) -> None:
    """Write a new random KEK, readable by its owner only; never overwrites a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    except FileExistsError:
        raise KeyFileError(f"{path} exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "w") as f:
        f.write(new_key().hex() + "\n")


def load_key_file(path: Path) -> KeyRing:
    """The key ring in `path`."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    keys = []
    for n, line in enumerate(lines, start=1):
        try:
            key = bytes.fromhex(line)
        except ValueError:
            raise KeyFileError(f"{path} line {n} is not a hex-encoded key") from None
        if len(key) != KEY_BYTES:
            raise KeyFileError(f"{path} line {n} holds {len(key)} bytes; a key-encryption key is {KEY_BYTES}")
        keys.append(AesGcmKek(key, key_id_of(key)))
    return KeyRing(keys)


def write_key_file(path: Path, keys: Sequence[bytes]) -> None:
    """Replace the key file atomically; the bytes of the file it replaces are overwritten first."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as f:
        f.write("".join(k.hex() + "\n" for k in keys))
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        size = path.stat().st_size
        with path.open("r+b") as old:
            old.write(b"\0" * size)
            old.flush()
            os.fsync(old.fileno())
    tmp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def raw_keys(ring: KeyRing) -> list[bytes]:
    return [k.raw for k in ring.keys]


def load_private_key(path: Path) -> bytes:
    """A secp256k1 private key kept as hex in a file (a member's, a relayer's)."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        key = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise KeyFileError(f"{path} does not hold a hex-encoded private key") from None
    if len(key) != 32:
        raise KeyFileError(f"{path} does not hold a 32-byte private key")
    return key
