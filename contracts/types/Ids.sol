// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Identifies one version of a record at its custodian (random, 32 bytes, no PHI).
type RecordId is bytes32;

/// @notice Identifies one consent: keccak256(patient, grantee, index of the pair's consent).
type ConsentId is bytes32;

using {eqRecordId as ==} for RecordId global;
using {eqConsentId as ==} for ConsentId global;

function eqRecordId(RecordId a, RecordId b) pure returns (bool) {
    return RecordId.unwrap(a) == RecordId.unwrap(b);
}

function eqConsentId(ConsentId a, ConsentId b) pure returns (bool) {
    return ConsentId.unwrap(a) == ConsentId.unwrap(b);
}
