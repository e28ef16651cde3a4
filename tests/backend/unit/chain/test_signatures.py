import os

import pytest
from eth_account import Account

from careledger.chain.clients import compact_signature, expand_signature, pack_meta
from careledger.errors import InvalidSignatureFormat


def test_compact_signature_round_trips_and_recovers() -> None:
    account = Account.create()
    for _ in range(20):
        digest = os.urandom(32)
        signature = bytes(Account.unsafe_sign_hash(digest, account.key).signature)
        r, vs = compact_signature(signature)
        assert expand_signature(r, vs) == signature
        assert Account._recover_hash(digest, signature=expand_signature(r, vs)) == account.address


@pytest.mark.parametrize(
    "signature",
    [b"\x01" * 64, b"\x01" * 64 + b"\x00", b"\x01" * 64 + b"\x1d", b"\x01" * 32 + b"\xff" * 32 + b"\x1b"],
)
def test_compact_signature_refuses_malformed(signature: bytes) -> None:
    with pytest.raises(InvalidSignatureFormat):
        compact_signature(signature)


def test_pack_meta_layout() -> None:
    requester = "0x" + "12" * 20
    meta = pack_meta(requester, 1234, 7, True)
    assert meta & (2**160 - 1) == int(requester, 16)
    assert (meta >> 160) & (2**64 - 1) == 1234
    assert (meta >> 224) & 0xFF == 7
    assert meta >> 232 == 1
    with pytest.raises(ValueError, match="out of range"):
        pack_meta(requester, 2**64, 0, False)
