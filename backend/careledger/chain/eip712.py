"""EIP-712 messages that patients sign: consent grants and revocations, enrollments, erasures.

The type strings here must equal the contracts' (contracts/libraries/*Hashes.sol); a test
checks every digest against the contract's own `*Digest` view on a real chain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, ClassVar, Self

from eth_account import Account

from careledger.chain.words import address_word, bytes32_word, uint_word
from careledger.hashing import keccak256

CONSENT_DOMAIN = "CareLedger ConsentRegistry"
RECORD_DOMAIN = "CareLedger RecordRegistry"
DOMAIN_VERSION = "1"


@dataclass(frozen=True)
class Domain:
    name: str
    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


class TypedMessage:
    """Base for the signed messages: a dataclass with a primary type and its fields."""

    PRIMARY_TYPE: ClassVar[str]
    FIELDS: ClassVar[list[tuple[str, str]]]  # (solidity type, name) in struct order

    @classmethod
    def type_string(cls) -> str:
        return f"{cls.PRIMARY_TYPE}({','.join(f'{t} {n}' for t, n in cls.FIELDS)})"

    @classmethod
    def type_hash(cls) -> bytes:
        return _type_hash(cls.type_string())

    def message(self) -> dict[str, Any]:
        """The EIP-712 message, JSON-ready (bytes as 0x hex, which EIP-712 encoders accept)."""
        values = asdict(self)  # type: ignore[call-overload]
        return {name: _jsonable(values[_snake(name)]) for _, name in self.FIELDS}

    def to_json(self) -> dict[str, Any]:
        """Fields by Python name, bytes as hex: what a relay job stores."""
        out: dict[str, Any] = {}
        for _, name in self.FIELDS:
            value = getattr(self, _snake(name))
            out[_snake(name)] = value.hex() if isinstance(value, bytes) else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Inverse of to_json; bytes32 fields come back from hex."""
        kwargs = {
            _snake(name): bytes.fromhex(data[_snake(name)]) if kind == "bytes32" else data[_snake(name)]
            for kind, name in cls.FIELDS
        }
        return cls(**kwargs)

    def as_tuple(self) -> tuple[Any, ...]:
        """The struct as a contract call takes it, fields in struct order."""
        return tuple(getattr(self, _snake(name)) for _, name in self.FIELDS)

    def typed_data(self, domain: Domain) -> dict[str, Any]:
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                self.PRIMARY_TYPE: [{"name": n, "type": t} for t, n in self.FIELDS],
            },
            "primaryType": self.PRIMARY_TYPE,
            "domain": domain.as_dict(),
            "message": self.message(),
        }

    def digest(self, domain: Domain) -> bytes:
        """The EIP-712 digest, encoded here word by word: every field is a static type, and the
        gateway checks a patient's signature per request (eth-account's encoder costs ~1 ms)."""
        return keccak256(b"\x19\x01" + _separator(domain) + self.struct_hash())

    def struct_hash(self) -> bytes:
        words = [self.type_hash()]
        words += [_encode(kind, getattr(self, _snake(name))) for kind, name in self.FIELDS]
        return keccak256(b"".join(words))

    def sign(self, private_key: bytes | str, domain: Domain) -> bytes:
        """65-byte r‖s‖v signature (v = 27 or 28) by `private_key`."""
        signed = Account.sign_typed_data(private_key, full_message=self.typed_data(domain))
        return bytes(signed.signature)


@dataclass(frozen=True)
class Grant(TypedMessage):
    PRIMARY_TYPE: ClassVar[str] = "Grant"
    FIELDS: ClassVar[list[tuple[str, str]]] = [
        ("address", "patient"),
        ("address", "grantee"),
        ("uint16", "categories"),
        ("uint8", "purposes"),
        ("uint40", "validFrom"),
        ("uint40", "validUntil"),
        ("uint256", "nonce"),
        ("uint256", "deadline"),
    ]
    patient: str
    grantee: str
    categories: int
    purposes: int
    valid_from: int
    valid_until: int
    nonce: int
    deadline: int


@dataclass(frozen=True)
class Revocation(TypedMessage):
    PRIMARY_TYPE: ClassVar[str] = "Revocation"
    FIELDS: ClassVar[list[tuple[str, str]]] = [
        ("address", "patient"),
        ("bytes32", "consentId"),
        ("uint256", "nonce"),
        ("uint256", "deadline"),
    ]
    patient: str
    consent_id: bytes
    nonce: int
    deadline: int


@dataclass(frozen=True)
class Enrollment(TypedMessage):
    PRIMARY_TYPE: ClassVar[str] = "Enrollment"
    FIELDS: ClassVar[list[tuple[str, str]]] = [
        ("address", "patient"),
        ("address", "custodian"),
        ("bytes32", "referenceCommitment"),
        ("uint256", "nonce"),
        ("uint256", "deadline"),
    ]
    patient: str
    custodian: str
    reference_commitment: bytes
    nonce: int
    deadline: int


@dataclass(frozen=True)
class Erasure(TypedMessage):
    PRIMARY_TYPE: ClassVar[str] = "Erasure"
    FIELDS: ClassVar[list[tuple[str, str]]] = [
        ("address", "patient"),
        ("bytes32", "recordId"),
        ("uint256", "nonce"),
        ("uint256", "deadline"),
    ]
    patient: str
    record_id: bytes
    nonce: int
    deadline: int


_DOMAIN_TYPE = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


@lru_cache(maxsize=64)
def _separator(domain: Domain) -> bytes:
    return keccak256(
        _DOMAIN_TYPE
        + keccak256(domain.name.encode())
        + keccak256(DOMAIN_VERSION.encode())
        + _encode("uint256", domain.chain_id)
        + _encode("address", domain.verifying_contract)
    )


@lru_cache(maxsize=16)
def _type_hash(type_string: str) -> bytes:
    return keccak256(type_string.encode())


def _encode(kind: str, value: Any) -> bytes:
    """One static EIP-712 field as its 32-byte word; ValueError if it does not fit the type."""
    if kind == "address":
        return address_word(value)
    if kind == "bytes32":
        return bytes32_word(value)
    return uint_word(value, int(kind.removeprefix("uint")))


def _jsonable(value: Any) -> Any:
    return "0x" + value.hex() if isinstance(value, bytes) else value


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
