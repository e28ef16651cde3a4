// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IRecordRegistry} from "../interfaces/IRecordRegistry.sol";
import {RecordId} from "../types/Ids.sol";

/// @title EIP-712 struct hashes and Merkle leaves of records and enrollments
library RecordHashes {
    bytes32 internal constant ENROLLMENT_TYPEHASH = keccak256(
        "Enrollment(address patient,address custodian,bytes32 referenceCommitment,uint256 nonce,uint256 deadline)"
    );

    bytes32 internal constant ERASURE_TYPEHASH =
        keccak256("Erasure(address patient,bytes32 recordId,uint256 nonce,uint256 deadline)");

    function hash(IRecordRegistry.Enrollment calldata e) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(ENROLLMENT_TYPEHASH, e.patient, e.custodian, e.referenceCommitment, e.nonce, e.deadline)
        );
    }

    function hash(IRecordRegistry.Erasure calldata e) internal pure returns (bytes32) {
        return keccak256(abi.encode(ERASURE_TYPEHASH, e.patient, RecordId.unwrap(e.recordId), e.nonce, e.deadline));
    }

    /// @dev A record's id: keccak256(abi.encode(custodian, patient, commitment)). Binding the
    /// patient means no one can anchor the same commitment under another patient key and
    /// make the real patient's record read as erased (see RecordRegistry.t.sol).
    function idOf(address custodian, address patient, bytes32 commitment) internal pure returns (RecordId) {
        return RecordId.wrap(keccak256(abi.encode(custodian, patient, commitment)));
    }

    /// @dev A leaf is hashed once: its preimage is 192 bytes, so no 64-byte inner node of the
    /// tree can pass for a leaf (the reason OpenZeppelin double-hashes 64-byte leaves).
    function leaf(
        RecordId id,
        address patient,
        address custodian,
        uint8 category,
        bytes32 commitment,
        RecordId supersedes
    ) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(RecordId.unwrap(id), patient, custodian, category, commitment, RecordId.unwrap(supersedes))
        );
    }
}
