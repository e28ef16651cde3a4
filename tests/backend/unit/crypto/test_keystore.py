"""The patient keystore: one seed, a pseudonym per custodian and generation, encrypted at rest."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest
from eth_account import Account

from careledger import errors
from careledger.crypto.keystore import SECP256K1_N, PatientKeystore, derive_pseudonym_key

CLINIC_A = "0xBcd4042DE499D14e55001CcbB24a551F3b954096"
CLINIC_B = "0x71bE63f3384f5fb98995898A86B02Fb2426c5788"
SEED = bytes(range(32))


def test_pseudonyms_differ_by_custodian_generation_and_chain_and_are_stable() -> None:
    keys = {
        derive_pseudonym_key(SEED, 31337, CLINIC_A, 1),
        derive_pseudonym_key(SEED, 31337, CLINIC_B, 1),
        derive_pseudonym_key(SEED, 31337, CLINIC_A, 2),
        derive_pseudonym_key(SEED, 1, CLINIC_A, 1),
    }
    assert len(keys) == 4
    assert derive_pseudonym_key(SEED, 31337, CLINIC_A, 1) == derive_pseudonym_key(SEED, 31337, CLINIC_A, 1)
    # the derivation is pinned (a change would orphan every patient's enrollments) and is
    # RFC 5869 HKDF-SHA256, recomputed here from hmac
    info = (31337).to_bytes(8, "big") + bytes.fromhex(CLINIC_A[2:]) + (1).to_bytes(4, "big")
    prk = hmac.new(b"careledger/pseudonym/v1", SEED, hashlib.sha256).digest()
    t1 = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
    okm = t1 + hmac.new(prk, t1 + info + b"\x02", hashlib.sha256).digest()[:16]
    expected = int.from_bytes(okm, "big") % (SECP256K1_N - 1) + 1
    assert derive_pseudonym_key(SEED, 31337, CLINIC_A, 1) == expected.to_bytes(32, "big")
    assert (
        Account.from_key(expected.to_bytes(32, "big")).address == "0xB928Ac36C670C1ddDb76FA2F4B35301fbd26C411"
    )


def test_a_keystore_round_trips_and_never_holds_the_seed_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "patient.json"
    created = PatientKeystore.create(path, "correct horse", seed=SEED)
    created.use(CLINIC_A)
    generation = created.rotate(CLINIC_A)
    assert generation == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_text()
    assert SEED.hex() not in raw
    assert json.loads(raw)["custodians"] == {CLINIC_A: {"current": 1, "pending": 2}}
    opened = PatientKeystore.unlock(path, "correct horse")
    assert opened.seed == SEED
    assert opened.pseudonym(31337, CLINIC_A) == created.pseudonym(31337, CLINIC_A, 1)
    new = opened.pseudonym(31337, CLINIC_A, 2)
    assert opened.pending_generation(31337, CLINIC_A, new) == 2
    opened.promote(CLINIC_A, 2)
    again = PatientKeystore.unlock(path, "correct horse")
    assert again.pseudonym(31337, CLINIC_A) == new
    assert again.generation_of(31337, CLINIC_A, created.pseudonym(31337, CLINIC_A, 1)) == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_refusals(tmp_path: Path) -> None:
    path = tmp_path / "patient.json"
    with pytest.raises(errors.InvalidRequest, match="at least 8"):
        PatientKeystore.create(path, "short")
    PatientKeystore.create(path, "correct horse")
    with pytest.raises(errors.KeyFileError, match="never overwritten"):
        PatientKeystore.create(path, "correct horse")
    with pytest.raises(errors.KeyFileError, match="wrong passphrase"):
        PatientKeystore.unlock(path, "wrong horse")
    with pytest.raises(errors.KeyFileError, match="no keystore"):
        PatientKeystore.unlock(tmp_path / "missing.json", "correct horse")
    (tmp_path / "other.json").write_text('{"kind": "something else"}')
    with pytest.raises(errors.KeyFileError, match="not a CareLedger patient keystore"):
        PatientKeystore.unlock(tmp_path / "other.json", "correct horse")
