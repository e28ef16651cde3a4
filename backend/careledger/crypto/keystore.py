"""A patient's keystore: one secret seed, encrypted at rest, and a pseudonym per custodian.

A patient is known to each custodian under a different address (a pseudonym), so that two
custodians cannot link their records by the patient's key alone. All pseudonyms come from
one 32-byte seed: key = HKDF-SHA256(seed, info = chain id ‖ custodian ‖ generation), so a
backup of the seed is a backup of every pseudonym, past and present. The generation goes up
when the patient rotates the pseudonym at a custodian (a lost phone, a leaked key); the old
generations stay derivable, so the patient can still account for and read what was kept
under them.

The file is JSON: the seed as an Ethereum keystore (Web3 Secret Storage, scrypt + AES-128-CTR,
what wallets use) and, in the clear, the generations in use — addresses of custodians, no PHI.
Writes go to a temporary file and are renamed over the old one, so a crash leaves either
the old or the new keystore, never half of one.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account import Account
from eth_utils.address import is_address, to_checksum_address

from careledger import errors

KIND = "careledger-patient-keystore"
VERSION = 1
SCRYPT_N = 2**16  # ~0.2 s and 64 MiB per unlock here: slow for guessing, quick for a CLI
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_SALT = b"careledger/pseudonym/v1"


def derive_pseudonym_key(seed: bytes, chain_id: int, custodian: str, generation: int) -> bytes:
    """The private key of the patient's pseudonym at `custodian`, in its `generation` (1, 2, …)."""
    if len(seed) != 32:
        raise errors.KeyFileError("a patient seed is 32 bytes")
    if generation < 1:
        raise errors.InvalidRequest("pseudonym generations start at 1")
    info = chain_id.to_bytes(8, "big") + bytes.fromhex(custodian[2:]) + generation.to_bytes(4, "big")
    okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=_SALT, info=info).derive(seed)
    # 384 bits reduced mod n-1: the bias is below 2^-128; + 1 keeps the key out of zero.
    return (int.from_bytes(okm, "big") % (SECP256K1_N - 1) + 1).to_bytes(32, "big")


@dataclass
class Custodian:
    """The patient's pseudonyms at one custodian: the generation in use and one awaiting enrollment."""

    current: int = 1
    pending: int | None = None

    def generations(self) -> list[int]:
        return list(range(1, (self.pending or self.current) + 1))


@dataclass
class PatientKeystore:
    """An unlocked keystore: the seed in memory, the custodians' generations, where it lives."""

    path: Path
    seed: bytes
    crypto: dict[str, Any]
    custodians: dict[str, Custodian] = field(default_factory=dict)

    # ------------------------------------------------------------------ files

    @classmethod
    def create(cls, path: Path, passphrase: str, *, seed: bytes | None = None) -> PatientKeystore:
        """A new keystore with a fresh seed (or a given one, to restore a backup); never overwrites."""
        if path.exists():
            raise errors.KeyFileError(f"{path} exists already; a keystore is never overwritten")
        if len(passphrase) < 8:
            raise errors.InvalidRequest("the passphrase must have at least 8 characters")
        seed = seed if seed is not None else _new_seed()
        crypto = Account.encrypt(seed, passphrase, kdf="scrypt", iterations=SCRYPT_N)
        keystore = cls(path, seed, crypto)
        keystore.save()
        return keystore

    @classmethod
    def unlock(cls, path: Path, passphrase: str) -> PatientKeystore:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise errors.KeyFileError(
                f"no keystore at {path}: create one with `careledger patient keygen`"
            ) from None
        except (OSError, ValueError) as exc:
            raise errors.KeyFileError(f"{path} is not a readable keystore ({exc})") from None
        if not isinstance(raw, dict) or raw.get("kind") != KIND or raw.get("version") != VERSION:
            raise errors.KeyFileError(f"{path} is not a CareLedger patient keystore (version {VERSION})")
        try:
            seed = bytes(Account.decrypt(raw["seed"], passphrase))
        except ValueError:
            raise errors.KeyFileError("wrong passphrase for this keystore") from None
        custodians = {
            str(to_checksum_address(a)): Custodian(int(c["current"]), c.get("pending"))
            for a, c in raw.get("custodians", {}).items()
        }
        return cls(path, seed, raw["seed"], custodians)

    def save(self) -> None:
        document = {
            "kind": KIND,
            "version": VERSION,
            "seed": self.crypto,
            "custodians": {
                a: {"current": c.current, **({"pending": c.pending} if c.pending else {})}
                for a, c in sorted(self.custodians.items())
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(document, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.path)

    # ------------------------------------------------------------------ pseudonyms

    def custodian(self, address: str) -> Custodian:
        return self.custodians.get(_address(address), Custodian())

    def key(self, chain_id: int, custodian: str, generation: int | None = None) -> bytes:
        """The pseudonym key at `custodian`: the current generation unless one is named."""
        state = self.custodian(custodian)
        return derive_pseudonym_key(self.seed, chain_id, _address(custodian), generation or state.current)

    def pseudonym(self, chain_id: int, custodian: str, generation: int | None = None) -> str:
        return str(Account.from_key(self.key(chain_id, custodian, generation)).address)

    def use(self, custodian: str) -> None:
        """Remember a custodian the patient has a pseudonym at (for the accounting across all)."""
        address = _address(custodian)
        if address not in self.custodians:
            self.custodians[address] = Custodian()
            self.save()

    def rotate(self, custodian: str) -> int:
        """Start a new generation at `custodian`; it becomes current once enrolled there."""
        address = _address(custodian)
        state = self.custodians.setdefault(address, Custodian())
        state.pending = (state.pending or state.current) + 1
        self.save()
        return state.pending

    def pending_generation(self, chain_id: int, custodian: str, pseudonym: str) -> int | None:
        """The pending generation whose pseudonym is `pseudonym`, if any."""
        state = self.custodian(custodian)
        if state.pending and self.pseudonym(chain_id, custodian, state.pending) == _address(pseudonym):
            return state.pending
        return None

    def promote(self, custodian: str, generation: int) -> None:
        state = self.custodians.setdefault(_address(custodian), Custodian())
        state.current, state.pending = generation, None
        self.save()

    def generation_of(self, chain_id: int, custodian: str, pseudonym: str) -> int | None:
        """Which generation at `custodian` the address `pseudonym` is, or None."""
        for generation in self.custodian(custodian).generations():
            if self.pseudonym(chain_id, custodian, generation) == _address(pseudonym):
                return generation
        return None


def _new_seed() -> bytes:
    while True:  # a seed must also be a valid secp256k1 key for the Web3 keystore format
        seed = secrets.token_bytes(32)
        if 0 < int.from_bytes(seed, "big") < SECP256K1_N:
            return seed


def _address(value: str) -> str:
    if not is_address(value):
        raise errors.InvalidRequest(f"{value!r} is not an address")
    return str(to_checksum_address(value))
