"""Codes shared with the contracts (contracts/types/Codes.sol): keep the two in step.

A test compares these numbers with the contracts' behaviour, so a drift fails the suite.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class Role(IntEnum):
    NONE = 0
    CLINIC = 1
    INSURER = 2
    RESEARCH = 3
    AUDITOR = 4


class MemberStatus(IntEnum):
    NONE = 0
    ACTIVE = 1
    SUSPENDED = 2


class Category(IntEnum):
    """Coarse data categories; a consent covers a set of them (bit i = category i)."""

    DEMOGRAPHICS = 0
    ENCOUNTERS = 1
    CONDITIONS = 2
    OBSERVATIONS = 3
    MEDICATIONS = 4
    ALLERGIES = 5
    IMMUNIZATIONS = 6
    PROCEDURES = 7
    DIAGNOSTICS = 8
    DOCUMENTS = 9
    CLAIMS = 10


class Purpose(IntEnum):
    """Purposes of use, HL7 v3 ActReason codes. BTG marks break-glass; no consent grants it."""

    TREAT = 0
    ETREAT = 1
    HPAYMT = 2
    HOPERAT = 3
    HRESCH = 4
    PUBHLTH = 5
    PATRQT = 6
    BTG = 7


GRANTABLE_PURPOSES = frozenset(p for p in Purpose if p is not Purpose.BTG)


def mask(codes: Iterable[IntEnum]) -> int:
    """Bitmask with bit i set for each code i."""
    result = 0
    for code in codes:
        result |= 1 << int(code)
    return result


def categories_of(bitmask: int) -> list[Category]:
    return [c for c in Category if bitmask >> c & 1]


def purposes_of(bitmask: int) -> list[Purpose]:
    return [p for p in Purpose if bitmask >> p & 1]
