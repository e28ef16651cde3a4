// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RecordId} from "../types/Ids.sol";

/// @title CareLedger access log
/// @notice Custodians' gateways log every disclosure, in batches. Each entry carries the
/// requester's own signature over its request, so anyone can recover who asked from chain
/// data alone and a custodian cannot invent a disclosure against another member.
interface IAccessLog {
    /// @notice One disclosure, in six calldata words. The patient is not repeated here: the
    /// record id names it (RecordAnchored), so the two can never disagree.
    /// @dev Calldata is what a log entry mostly costs (EIP-7623 prices a non-zero byte at up to
    /// 40 gas), hence `meta` packs four small fields into one word (see DisclosureMeta):
    /// bits 0-159 requester, the key that signed the request (an active member's EOA admin or
    /// signer key); bits 160-223 checkedBlock, the block at which consent was checked (not after
    /// the block that logs it; more than maxCheckLag blocks before it, and audits flag the entry
    /// as late); bits 224-231 purpose (Codes.sol); bit 232 breakGlass; the other bits zero.
    /// @param basis The permitting consent's id or, for break-glass, keccak256 of the reason text (kept off-chain).
    /// @param requestHash EIP-191 (0x45) hash of the request's RFC 9421 signature base: what the requester signed.
    /// @param sigR The requester's 65-byte signature r‖s‖v over requestHash, in EIP-2098 compact
    /// form: r here and (v - 27) << 255 | s in sigVS (lossless).
    struct Disclosure {
        RecordId recordId;
        uint256 meta;
        bytes32 basis;
        bytes32 requestHash;
        bytes32 sigR;
        bytes32 sigVS;
    }

    /// @notice Emitted for every disclosure, with every field of its entry.
    event AccessLogged(
        RecordId indexed recordId,
        address indexed requester,
        uint8 purpose,
        bool breakGlass,
        uint64 checkedBlock,
        bytes32 basis,
        bytes32 requestHash,
        bytes32 sigR,
        bytes32 sigVS
    );

    /// @notice Emitted once per batch, right after its AccessLogged events in the same transaction.
    /// @param custodian The member whose gateway disclosed the records.
    event AccessBatchLogged(uint256 indexed batchId, address indexed custodian, uint256 count, address relayer);

    /// @notice Thrown when the sender does not act for an active CLINIC member.
    error AccessLogNotActiveMember(address sender);
    /// @notice Thrown for an empty batch or one above the size limit.
    error AccessLogInvalidBatchSize(uint256 count);
    /// @notice Thrown when consent was "checked" at a block after the one that logs it.
    error AccessLogStaleCheck(uint64 checkedBlock, uint256 currentBlock);
    /// @notice Thrown for an unknown purpose, a break-glass entry with a purpose other than ETREAT or BTG,
    /// an entry without its basis (consent id or reason hash), signature or requester, or
    /// non-zero reserved bits in `meta`.
    error AccessLogInvalidEntry(bytes32 recordId);

    /// @notice Logs a batch of disclosures; the caller must act for an active CLINIC.
    /// @return batchId The batch's id.
    function log(Disclosure[] calldata entries) external returns (uint256 batchId);

    /// @notice Most blocks between a consent check and its log entry for the entry to be prompt;
    /// later entries are recorded too, and audits flag them as late.
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
