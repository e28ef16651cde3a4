// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Member roles. NONE marks an address that was never admitted.
enum Role {
    NONE,
    CLINIC,
    INSURER,
    RESEARCH,
    AUDITOR
}

/// @notice Member status. NONE marks an address that was never admitted.
enum MemberStatus {
    NONE,
    ACTIVE,
    SUSPENDED
}

/// @notice Coarse data categories; a consent covers a set of them as a bitmask (bit i = category i).
/// @dev Extend only by appending, so that existing bitmasks keep their meaning.
library Category {
    uint8 internal constant DEMOGRAPHICS = 0;
    uint8 internal constant ENCOUNTERS = 1;
    uint8 internal constant CONDITIONS = 2;
    uint8 internal constant OBSERVATIONS = 3;
    uint8 internal constant MEDICATIONS = 4;
    uint8 internal constant ALLERGIES = 5;
    uint8 internal constant IMMUNIZATIONS = 6;
    uint8 internal constant PROCEDURES = 7;
    uint8 internal constant DIAGNOSTICS = 8;
    uint8 internal constant DOCUMENTS = 9;
    uint8 internal constant CLAIMS = 10;
    uint8 internal constant COUNT = 11;
    /// @notice Every category bit set.
    uint16 internal constant ALL = uint16((1 << COUNT) - 1);
}

/// @notice Purposes of use (HL7 v3 ActReason); a consent covers a set of them as a bitmask.
/// @dev BTG (break-the-glass) is never granted by consent: it marks emergency access.
library Purpose {
    uint8 internal constant TREAT = 0;
    uint8 internal constant ETREAT = 1;
    uint8 internal constant HPAYMT = 2;
    uint8 internal constant HOPERAT = 3;
    uint8 internal constant HRESCH = 4;
    uint8 internal constant PUBHLTH = 5;
    uint8 internal constant PATRQT = 6;
    uint8 internal constant BTG = 7;
    uint8 internal constant COUNT = 8;
    /// @notice Every purpose that a consent may grant (all but BTG).
    uint8 internal constant GRANTABLE = uint8((1 << BTG) - 1);
}
