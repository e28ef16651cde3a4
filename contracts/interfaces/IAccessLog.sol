// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RecordId} from "../types/Ids.sol";

/// @title CareLedger access log
/// @notice Custodians' gateways log every disclosure, in batches. Each entry carries the
/// requester's own signature over its request, so anyone can recover who asked from chain
/// data alone and a custodian cannot invent a disclosure against another member.
interface IAccessLog {
    /// @notice One disclosure.
    /// @param requester The key that signed the request (an active member's admin or signer key).
    /// @param purpose Purpose of use code (see Codes.sol).
    /// @param breakGlass True for emergency access without consent.
    /// @param checkedBlock The block at which consent was checked; must be recent (see maxCheckLag).
    /// @param basis The permitting consent's id or, for break-glass, keccak256 of the reason text (kept off-chain).
    /// @param requestHash EIP-191 (0x45) hash of the request's RFC 9421 signature base: what the requester signed.
    /// @param signature The requester's signature over requestHash (65 bytes r‖s‖v, or ERC-1271 bytes).
    struct Disclosure {
        RecordId recordId;
        address patient;
        address requester;
        uint8 purpose;
        bool breakGlass;
        uint64 checkedBlock;
        bytes32 basis;
        bytes32 requestHash;
        bytes signature;
    }

    /// @notice Emitted for every disclosure.
    event AccessLogged(
        RecordId indexed recordId,
        address indexed patient,
        address indexed requester,
        uint8 purpose,
        bool breakGlass,
        uint64 checkedBlock,
        bytes32 basis,
        bytes32 requestHash,
        bytes signature
    );

    /// @notice Emitted once per batch, right after its AccessLogged events in the same transaction.
    /// @param custodian The member whose gateway disclosed the records.
    event AccessBatchLogged(uint256 indexed batchId, address indexed custodian, uint256 count, address relayer);

    /// @notice Thrown when the sender does not act for an active CLINIC member.
    error AccessLogNotActiveMember(address sender);
    /// @notice Thrown for an empty batch or one above the size limit.
    error AccessLogInvalidBatchSize(uint256 count);
    /// @notice Thrown when consent was checked in the future or more than maxCheckLag blocks ago.
    error AccessLogStaleCheck(uint64 checkedBlock, uint256 currentBlock);
    /// @notice Thrown for an unknown purpose, a break-glass entry with a purpose other than ETREAT or BTG,
    /// a consent entry without a consent id, or an entry without a signature.
    error AccessLogInvalidEntry(bytes32 recordId);

    /// @notice Logs a batch of disclosures; the caller must act for an active CLINIC.
    /// @return batchId The batch's id.
    function log(Disclosure[] calldata entries) external returns (uint256 batchId);

    /// @notice Most blocks between a consent check and its log entry.
    function maxCheckLag() external view returns (uint256);

    /// @notice Most entries one batch may carry.
    function maxBatchSize() external pure returns (uint256);

    /// @notice Number of batches logged.
    function batchCount() external view returns (uint256);

    /// @notice Number of disclosures logged.
    function entryCount() external view returns (uint256);

    /// @notice The member registry this log asks about members.
    function memberRegistry() external view returns (address);
}
