// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAccessLog} from "./interfaces/IAccessLog.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";
import {Role} from "./types/Codes.sol";

/// @title CareLedger access log
/// @notice Disclosures live in events; storage keeps only counters. Signatures are not
/// recovered on chain (3,000 gas each): auditors recover them from the events.
contract AccessLog is IAccessLog {
    uint256 private constant MAX_BATCH_SIZE = 500;
    /// @dev Literals for the assembly loop (which only takes number constants); the Solidity
    /// tests check them against the event's and errors' selectors and Codes.sol.
    uint256 private constant ACCESS_LOGGED = 0xfc39c2ffa163293f5075f8aa1b8070b50604e0a3605c79f854d0bb13f6ebcb99;
    uint256 private constant STALE_CHECK_SELECTOR = 0x0f358eb8;
    uint256 private constant INVALID_ENTRY_SELECTOR = 0xf69cf81d;
    uint256 private constant PURPOSE_ETREAT = 1; // Purpose.ETREAT
    uint256 private constant PURPOSE_BTG = 7; // Purpose.BTG

    IMemberRegistry private immutable _memberRegistry;
    uint256 private immutable _maxCheckLag;
    uint128 private _batchCount;
    uint128 private _entryCount;

    /// @param maxCheckLag_ Most blocks between a consent check and its log entry for the entry to
    /// count as prompt. Later entries are still recorded (a disclosure that happened must not
    /// go missing from the patient's accounting because a gateway was down for a while), and
    /// audits flag them as late: past the lag, the checked block is only the gateway's word.
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
        _logEntries(entries);
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

    /// @dev The hot loop of logging, in assembly: per entry it reads six calldata words,
    /// checks them and logs, in one scratch area past the free-memory pointer (not moved).
    function _logEntries(Disclosure[] calldata entries) private {
        assembly ("memory-safe") {
            let m := mload(0x40)
            let src := entries.offset
            for { let end := add(src, mul(entries.length, 0xc0)) } lt(src, end) { src := add(src, 0xc0) } {
                let meta := calldataload(add(src, 0x20))
                let checked := and(shr(160, meta), 0xffffffffffffffff)
                if gt(checked, number()) {
                    mstore(0x00, shl(224, STALE_CHECK_SELECTOR))
                    mstore(0x04, checked)
                    mstore(0x24, number())
                    revert(0x00, 0x44)
                }
                let purpose := and(shr(224, meta), 0xff)
                let breakGlass := and(shr(232, meta), 1)
                let basis := calldataload(add(src, 0x40))
                let valid
                switch breakGlass
                case 1 { valid := or(eq(purpose, PURPOSE_ETREAT), eq(purpose, PURPOSE_BTG)) }
                default { valid := lt(purpose, PURPOSE_BTG) }
                // either way the basis is needed: a consent id, or the hash of the break-glass reason
                valid := and(valid, iszero(iszero(basis)))
                let requester := and(meta, 0xffffffffffffffffffffffffffffffffffffffff)
                valid := and(valid, and(iszero(shr(233, meta)), iszero(iszero(requester))))
                mstore(add(m, 0xa0), calldataload(add(src, 0x80)))
                if iszero(and(valid, iszero(iszero(mload(add(m, 0xa0)))))) {
                    mstore(0x00, shl(224, INVALID_ENTRY_SELECTOR))
                    mstore(0x04, calldataload(src))
                    revert(0x00, 0x24)
                }
                // AccessLogged(recordId, requester | purpose, breakGlass, checkedBlock, basis,
                // requestHash, sigR, sigVS)
                mstore(m, purpose)
                mstore(add(m, 0x20), breakGlass)
                mstore(add(m, 0x40), checked)
                mstore(add(m, 0x60), basis)
                mstore(add(m, 0x80), calldataload(add(src, 0x60)))
                mstore(add(m, 0xc0), calldataload(add(src, 0xa0)))
                log3(m, 0xe0, ACCESS_LOGGED, calldataload(src), requester)
            }
        }
    }

    function _logBatch(address custodian, uint256 count) private returns (uint256 batchId) {
        batchId = _batchCount;
        _batchCount = uint128(batchId + 1);
        _entryCount += uint128(count);
        emit AccessBatchLogged(batchId, custodian, count, msg.sender);
    }
}
