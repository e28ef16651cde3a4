// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAccessLog} from "./interfaces/IAccessLog.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";
import {RecordId} from "./types/Ids.sol";
import {Purpose, Role} from "./types/Codes.sol";

/// @title CareLedger access log
/// @notice Disclosures live in events; storage keeps only counters. Signatures are not
/// recovered on chain (3,000 gas each): auditors recover them from the events.
contract AccessLog is IAccessLog {
    uint256 private constant MAX_BATCH_SIZE = 500;

    IMemberRegistry private immutable _memberRegistry;
    uint256 private immutable _maxCheckLag;
    uint128 private _batchCount;
    uint128 private _entryCount;

    /// @param maxCheckLag_ Most blocks between a consent check and its log entry, which bounds
    /// how far a log can be back-dated around a revocation.
    constructor(IMemberRegistry memberRegistry_, uint256 maxCheckLag_) {
        _memberRegistry = memberRegistry_;
        _maxCheckLag = maxCheckLag_;
    }

    /// @inheritdoc IAccessLog
    function log(Disclosure[] calldata entries) external returns (uint256 batchId) {
        (address custodian, Role role) = _memberRegistry.activeSender(msg.sender);
        if (custodian == address(0) || role != Role.CLINIC) revert AccessLogNotActiveMember(msg.sender);
        uint256 count = entries.length;
        if (count == 0 || count > MAX_BATCH_SIZE) revert AccessLogInvalidBatchSize(count);
        for (uint256 i = 0; i < count; ++i) {
            _logEntry(entries[i]);
        }
        batchId = _logBatch(custodian, count);
    }

    /// @inheritdoc IAccessLog
    function maxCheckLag() external view returns (uint256) {
        return _maxCheckLag;
    }

    /// @inheritdoc IAccessLog
    function maxBatchSize() external pure returns (uint256) {
        return MAX_BATCH_SIZE;
    }

    /// @inheritdoc IAccessLog
    function batchCount() external view returns (uint256) {
        return _batchCount;
    }

    /// @inheritdoc IAccessLog
    function entryCount() external view returns (uint256) {
        return _entryCount;
    }

    /// @inheritdoc IAccessLog
    function memberRegistry() external view returns (address) {
        return address(_memberRegistry);
    }

    function _logEntry(Disclosure calldata d) private {
        uint64 checked = d.checkedBlock;
        if (checked > block.number || block.number - checked > _maxCheckLag) {
            revert AccessLogStaleCheck(checked, block.number);
        }
        uint8 purpose = d.purpose;
        bool valid = d.breakGlass
            ? (purpose == Purpose.ETREAT || purpose == Purpose.BTG)
            : (purpose < Purpose.BTG && d.basis != bytes32(0));
        if (!valid || d.signature.length == 0) revert AccessLogInvalidEntry(RecordId.unwrap(d.recordId));
        emit AccessLogged(
            d.recordId, d.patient, d.requester, purpose, d.breakGlass, checked, d.basis, d.requestHash, d.signature
        );
    }

    function _logBatch(address custodian, uint256 count) private returns (uint256 batchId) {
        batchId = _batchCount;
        _batchCount = uint128(batchId + 1);
        _entryCount += uint128(count);
        emit AccessBatchLogged(batchId, custodian, count, msg.sender);
    }
}
