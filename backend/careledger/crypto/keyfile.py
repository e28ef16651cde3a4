"""Key-encryption keys from key files: 32 random bytes, hex-encoded, one key per file."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from careledger.crypto.envelope import KEY_BYTES, AesGcmKek
from careledger.errors import KeyFileError


def create_key_file(path: Path) -> None:
    """Write a new random KEK, readable by its owner only; never overwrites a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    except FileExistsError:
        raise KeyFileError(f"{path} exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(KEY_BYTES).hex() + "\n")


def load_key_file(path: Path) -> AesGcmKek:
    """The KEK in `path`; its id is a fingerprint (never the key) so logs can name it."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"{path} does not hold a hex-encoded key") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path} holds {len(key)} bytes; a key-encryption key is {KEY_BYTES}")
    fingerprint = hashlib.sha256(b"careledger-kek-id\x00" + key).hexdigest()[:16]
    return AesGcmKek(key, f"kek-{fingerprint}")
