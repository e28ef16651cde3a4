from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from careledger.crypto.commitments import check_ciphertext, check_plaintext, commit, sha256
from careledger.crypto.envelope import (
    AesGcmKek,
    Sealed,
    SealedRecord,
    open_,
    open_meta,
    open_record,
    record_aad,
    rewrap,
    seal,
    seal_record,
)
from careledger.crypto.keyfile import create_key_file, load_key_file, raw_keys, write_key_file
from careledger.errors import DecryptionFailed, KeyFileError


def _counter_bytes() -> object:
    counter = itertools.count()
    return lambda n: bytes((next(counter) + i) % 256 for i in range(n))


def test_seal_known_answer() -> None:
    """AES-256-GCM test case 14 of the GCM specification (McGrew & Viega): key, IV and
    plaintext all zero, no associated data, injected as the data key and nonce."""
    kek = AesGcmKek(bytes(range(32)), "kek-test", random_bytes=_counter_bytes())  # type: ignore[arg-type]
    sealed = seal(bytes(16), b"", kek, random_bytes=lambda n: bytes(n))
    assert sealed.ciphertext == bytes(12) + bytes.fromhex(
        "cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919"
    )
    assert open_(sealed, b"", kek) == bytes(16)


def test_open_refuses_other_record_or_version() -> None:
    kek = AesGcmKek(bytes(32), "k")
    sealed = seal(b"record", record_aad(b"\x01" * 32, 1), kek)
    for aad in (record_aad(b"\x02" * 32, 1), record_aad(b"\x01" * 32, 2)):
        with pytest.raises(DecryptionFailed, match=r"^cannot open$"):
            open_(sealed, aad, kek)


def test_open_refuses_tampering_and_wrong_kek() -> None:
    kek = AesGcmKek(bytes(32), "k")
    aad = record_aad(b"\x01" * 32, 1)
    sealed = seal(b"record", aad, kek)
    flipped = bytes([sealed.ciphertext[20] ^ 1])
    tampered = Sealed(sealed.ciphertext[:20] + flipped + sealed.ciphertext[21:], sealed.wrapped_key, "k")
    with pytest.raises(DecryptionFailed):
        open_(tampered, aad, kek)
    with pytest.raises(DecryptionFailed):
        open_(sealed, aad, AesGcmKek(b"\x01" * 32, "other"))


def test_rewrap_keeps_ciphertext_and_drops_old_kek() -> None:
    old, new = AesGcmKek(bytes(32), "old"), AesGcmKek(b"\x07" * 32, "new")
    aad = record_aad(b"\x03" * 32, 4)
    sealed = seal(b"data", aad, old)
    moved = Sealed(sealed.ciphertext, rewrap(sealed.wrapped_key, aad, old, new), "new")
    assert open_(moved, aad, new) == b"data"
    with pytest.raises(DecryptionFailed):
        open_(moved, aad, old)


def test_commitment_checks_for_reader_and_auditor() -> None:
    salt, plaintext, ciphertext = b"\x05" * 32, b"plain", b"cipher"
    c = commit(salt, plaintext, ciphertext)
    assert check_plaintext(c, salt, plaintext, sha256(ciphertext))
    assert check_ciphertext(c, salt, sha256(plaintext), ciphertext)
    assert not check_plaintext(c, salt, b"plain!", sha256(ciphertext))
    assert not check_ciphertext(c, salt, sha256(plaintext), b"cipher!")
    assert not check_plaintext(c, b"\x06" * 32, plaintext, sha256(ciphertext))


def test_key_file_round_trip_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "kek.hex"
    create_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    kek = load_key_file(path)
    assert kek.key_id.startswith("kek-") and path.read_text().strip()[:16] not in kek.key_id
    assert len(kek.keys) == 1
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        create_key_file(path)
    (tmp_path / "short.hex").write_text("abcd")
    with pytest.raises(KeyFileError, match="line 1 holds 2 bytes"):
        load_key_file(tmp_path / "short.hex")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_key_file(tmp_path / "absent.hex")


def test_sealed_record_opens_with_its_commitment_secrets() -> None:
    kek = AesGcmKek(b"\x09" * 32, "k")
    aad = record_aad(b"Patient/p1|Observation/o1", 2)
    sealed = seal_record(b'{"resourceType":"Observation"}', b"\x05" * 32, aad, kek)
    plaintext, meta = open_record(sealed, aad, kek)
    assert plaintext == b'{"resourceType":"Observation"}'
    assert meta.salt == b"\x05" * 32 and meta.plaintext_sha256 == sha256(plaintext)
    assert open_meta(sealed.sealed_meta, sealed.wrapped_key, aad, kek) == meta
    with pytest.raises(DecryptionFailed):
        open_meta(sealed.sealed_meta, sealed.wrapped_key, record_aad(b"Patient/p1|Observation/o1", 3), kek)
    # The meta blob cannot be passed off as the record's content, nor the reverse.
    with pytest.raises(DecryptionFailed):
        open_record(SealedRecord(sealed.sealed_meta, sealed.ciphertext, sealed.wrapped_key, "k"), aad, kek)


def test_sealing_with_the_digest_at_hand_seals_the_same_bytes() -> None:
    """Ingest hands seal_record the plaintext's sha256 it already computed: same randomness,
    same sealed bytes as when seal_record computes it."""
    plaintext, salt, aad = b'{"resourceType":"Observation","id":"o1"}', b"\x06" * 32, record_aad(b"r", 1)
    sealed = [
        seal_record(plaintext, salt, aad, AesGcmKek(b"\x09" * 32, "k", random_bytes=_counter_bytes()),  # type: ignore[arg-type]
                    random_bytes=_counter_bytes(), **given)  # type: ignore[arg-type]
        for given in ({}, {"plaintext_sha256": sha256(plaintext)})
    ]  # fmt: skip
    assert sealed[0] == sealed[1]
    assert open_record(sealed[1], aad, AesGcmKek(b"\x09" * 32, "k"))[1].plaintext_sha256 == sha256(plaintext)
    # the digest given is the one sealed (the caller vouches for it), and only a digest is taken
    other = seal_record(plaintext, salt, aad, AesGcmKek(b"\x09" * 32, "k"), plaintext_sha256=b"\x07" * 32)
    assert open_record(other, aad, AesGcmKek(b"\x09" * 32, "k"))[1].plaintext_sha256 == b"\x07" * 32
    with pytest.raises(ValueError, match="32-byte"):
        seal_record(plaintext, salt, aad, AesGcmKek(b"\x09" * 32, "k"), plaintext_sha256=b"short")


def test_key_ring_rotation_keeps_old_keys_until_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "kek.hex"
    create_key_file(path)
    old = load_key_file(path)
    aad = record_aad(b"r", 1)
    wrapped = old.wrap(b"\x01" * 32, aad)
    fresh = bytes(range(32))
    write_key_file(path, [fresh, *raw_keys(old)])
    during = load_key_file(path)
    assert during.key_id != old.key_id and during.unwrap(wrapped, aad) == b"\x01" * 32
    rewrapped = during.wrap(during.unwrap(wrapped, aad), aad)
    write_key_file(path, [fresh])
    after = load_key_file(path)
    assert after.unwrap(rewrapped, aad) == b"\x01" * 32
    with pytest.raises(DecryptionFailed):
        after.unwrap(wrapped, aad)
    assert old.keys[0].raw.hex() not in path.read_text()
