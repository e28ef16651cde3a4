"""Signature recovery straight through libsecp256k1, against eth-account and the DESIGN.md vector."""

from __future__ import annotations

import os

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct
from eth_utils.address import to_checksum_address

from careledger.crypto.secp256k1 import SECP256K1_N, eip191_hash, recover_address
from careledger.hashing import checksum, checksum_text

DESIGN_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
DESIGN_ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"


def test_recover_address_matches_eth_account_for_random_keys_and_messages() -> None:
    for n in range(50):
        account = Account.create()
        message = os.urandom(n + 1)
        digest = eip191_hash(message)
        assert digest == bytes(_hash_eip191_message(encode_defunct(message)))
        signature = bytes(Account.sign_message(encode_defunct(message), account.key).signature)
        assert recover_address(digest, signature) == account.address


def test_recover_address_of_the_design_key() -> None:
    digest = eip191_hash(b"careledger")
    signature = bytes(Account.sign_message(encode_defunct(b"careledger"), DESIGN_KEY).signature)
    assert recover_address(digest, signature) == DESIGN_ADDRESS


def test_recover_address_refuses_what_the_contracts_refuse() -> None:
    digest = eip191_hash(b"message")
    signature = bytes(Account.sign_message(encode_defunct(b"message"), DESIGN_KEY).signature)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # the EIP-2 twin
    assert recover_address(digest, high_s) is None
    assert recover_address(digest, signature[:64] + bytes([v - 27])) is None  # v must be 27/28
    assert recover_address(digest, signature[:64]) is None  # 64 bytes
    assert recover_address(digest, bytes(32) + signature[32:]) is None  # r = 0
    assert recover_address(digest, signature[:32] + bytes(32) + signature[64:]) is None  # s = 0
    assert recover_address(digest[:31], signature) is None
    other = recover_address(eip191_hash(b"another message"), signature)
    assert other is not None and other != DESIGN_ADDRESS  # a valid key, just not the signer


def test_checksum_is_eip55() -> None:
    for _ in range(50):
        raw = os.urandom(20)
        assert checksum(raw) == to_checksum_address(raw)
        assert checksum_text("0x" + raw.hex().upper()) == to_checksum_address(raw)
