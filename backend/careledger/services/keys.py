"""The key-encryption key: which one is current across processes, and rotating it.

Rotation re-wraps every data key under a fresh KEK and then destroys the old one. It is
also how erasure becomes final: copies of an erased record's wrapped data key that linger
in free pages, WAL frames or dead tuples were wrapped under a KEK that no longer exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from careledger import errors
from careledger.crypto.envelope import record_aad
from careledger.crypto.keyfile import KeyRing, load_key_file, new_key, raw_keys, write_key_file
from careledger.store.db import Session
from careledger.store.repositories import GatewayState, Leases, Patients, Records

if TYPE_CHECKING:
    from careledger.services.gateway import Gateway

T = TypeVar("T")
KEK_CURRENT = "kek_current"
ROTATION_REQUESTED = "kek_rotation_requested"
CHUNK = 500


def sealing_key(gw: Gateway, s: Session) -> KeyRing:
    """The ring to seal with in this transaction: the current KEK, as all processes agree."""
    state = GatewayState(s)
    current = state.read(KEK_CURRENT, lock=True)
    if current is None:
        state.write(KEK_CURRENT, gw.kek.key_id)
    elif current != gw.kek.key_id:
        reload(gw)
        if gw.kek.key_id != current:
            raise errors.ConfigurationError(
                f"the key file does not hold the current key-encryption key {current}"
            )
    return gw.kek


def reload(gw: Gateway) -> None:
    """Read the key file again (another process rotated the KEK)."""
    gw.kek = load_key_file(gw.settings.kek_file)


def request_rotation(gw: Gateway) -> None:
    with gw.db.session() as s:
        GatewayState(s).write(ROTATION_REQUESTED, "1")


def rotation_requested(gw: Gateway) -> bool:
    with gw.db.session() as s:
        return GatewayState(s).read(ROTATION_REQUESTED) == "1"


def record_key(custodian: str, patient: str, resource_type: str, resource_id: str) -> bytes:
    """The logical name a record's ciphertext is bound to (see crypto.envelope.record_aad)."""
    return f"{custodian}|{patient}|{resource_type}/{resource_id}".encode()


def aad_of(custodian: str, patient: str, resource_type: str, resource_id: str, version: int) -> bytes:
    """The associated data of one version of one record."""
    return record_aad(record_key(custodian, patient, resource_type, resource_id), version)


def opening(gw: Gateway, open_with: Callable[[KeyRing], T]) -> T:
    """Open with the current key ring, reading the key file again once if that fails: another
    process may have rotated the KEK."""
    try:
        return open_with(gw.kek)
    except errors.DecryptionFailed:
        reload(gw)
        return open_with(gw.kek)


def rotate(gw: Gateway) -> int:
    """Re-wrap every data key under a fresh KEK, then destroy the old ones; returns the count.

    Run by one process at a time (the relayer, which holds the lease, or the CLI with the
    gateway stopped). A crash part-way leaves a key file that holds both keys: running it
    again finishes the job.
    """
    path = gw.settings.kek_file
    old = load_key_file(path)
    fresh = new_key(gw.random_bytes)
    write_key_file(path, [fresh, *raw_keys(old)])
    reload(gw)
    with gw.db.session() as s:
        GatewayState(s).write(KEK_CURRENT, gw.kek.key_id)
    count = 0
    while True:
        with gw.db.session() as s:
            rows = Records(s).with_kek_other_than(gw.kek.key_id, CHUNK)
            for row in rows:
                patient = Patients(s).by_id(row.patient_id)
                assert patient is not None and row.wrapped_key is not None
                aad = aad_of(gw.custodian, patient.address, row.resource_type, row.resource_id, row.version)
                row.wrapped_key = gw.kek.wrap(gw.kek.unwrap(row.wrapped_key, aad), aad)
                row.kek_id = gw.kek.key_id
            count += len(rows)
        if len(rows) < CHUNK:
            break
    write_key_file(path, [fresh])
    reload(gw)
    with gw.db.session() as s:
        GatewayState(s).write(ROTATION_REQUESTED, "0")
    gw.db.reclaim()
    return count


def rotate_now_or_request(gw: Gateway, *, wait_s: float = 60.0) -> str:
    """For the CLI: rotate here if no gateway process holds the relayer lease, else ask the
    one that does and wait. Returns the new current KEK id."""
    holder = f"cli-rotate-{id(gw):x}"
    now_ms = int(gw.clock() * 1000)
    with gw.db.session() as s:
        mine = Leases(s).acquire("relayer", holder, now_ms, int(gw.settings.lease_ttl_s * 1000))
    if mine:
        try:
            rotate(gw)
        finally:
            with gw.db.session() as s:
                Leases(s).release("relayer", holder)
        return gw.kek.key_id
    request_rotation(gw)
    deadline = time.monotonic() + wait_s
    while rotation_requested(gw):
        if time.monotonic() >= deadline:
            raise errors.TransactionFailed("the running gateway did not rotate the key in time")
        time.sleep(0.1)
    reload(gw)
    return gw.kek.key_id
