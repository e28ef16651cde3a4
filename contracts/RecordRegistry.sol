// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";
import {MerkleRoot} from "./libraries/MerkleRoot.sol";
import {RecordHashes} from "./libraries/RecordHashes.sol";
import {RecordId} from "./types/Ids.sol";
import {Category, Role} from "./types/Codes.sol";
import {UnorderedNonces} from "./utils/UnorderedNonces.sol";

/// @title CareLedger record registry
/// @notice Records live in events; storage keeps one Merkle root per batch, enrollments and
/// erasure marks, which keeps anchoring to a few thousand gas per record.
contract RecordRegistry is IRecordRegistry, EIP712, UnorderedNonces {
    using RecordHashes for Enrollment;
    using RecordHashes for Erasure;

    /// @dev ~4,500 gas a record keeps 1,000 well under the 16,777,216 gas cap of EIP-7825.
    uint256 private constant MAX_BATCH_SIZE = 1000;
    /// @dev Literals for the assembly loop (which only takes number constants); the Solidity
    /// tests check them against RecordAnchored.selector and RecordRegistryInvalidRecord.selector.
    uint256 private constant RECORD_ANCHORED = 0x5cce83ad6f1c0b0a36faa37493d163ef6dbbcb6ec5ad229ca4bc6f634189872a;
    uint256 private constant INVALID_RECORD_SELECTOR = 0xcf87ea48;
    uint256 private constant MAX_CATEGORY = 10; // Category.COUNT - 1

    IMemberRegistry private immutable _memberRegistry;
    mapping(address patient => mapping(address custodian => bytes32 referenceCommitment)) private _enrollments;
    mapping(uint256 batchId => bytes32 root) private _roots;
    uint256 private _batchCount;
    mapping(RecordId recordId => bool) private _erased;

    constructor(IMemberRegistry memberRegistry_) EIP712("CareLedger RecordRegistry", "1") {
        _memberRegistry = memberRegistry_;
    }

    /// @inheritdoc IRecordRegistry
    function enrollBySig(Enrollment calldata enrollment, bytes calldata signature) external {
        address custodian = _requireActiveClinic();
        if (enrollment.custodian != custodian) revert RecordRegistryWrongCustodian(enrollment.custodian, msg.sender);
        if (block.timestamp > enrollment.deadline) revert RecordRegistryExpiredSignature(enrollment.deadline);
        if (enrollment.referenceCommitment == bytes32(0)) revert RecordRegistryInvalidEnrollment();
        _checkSignature(enrollment.patient, _hashTypedDataV4(enrollment.hash()), signature);
        _useNonce(enrollment.patient, enrollment.nonce);
        _enroll(enrollment.patient, custodian, enrollment.referenceCommitment);
    }

    /// @inheritdoc IRecordRegistry
    function anchor(PatientRecords[] calldata batch) external returns (uint256 batchId) {
        address custodian = _requireActiveClinic();
        uint256 total = 0;
        for (uint256 g = 0; g < batch.length; ++g) {
            total += batch[g].records.length;
        }
        if (total == 0 || total > MAX_BATCH_SIZE) revert RecordRegistryInvalidBatchSize(total);

        bytes32[] memory leaves = new bytes32[](total);
        uint256 n = 0;
        for (uint256 g = 0; g < batch.length; ++g) {
            address patient = batch[g].patient;
            if (_enrollments[patient][custodian] == bytes32(0)) revert RecordRegistryNotEnrolled(patient, custodian);
            RecordEntry[] calldata records = batch[g].records;
            _anchorRecords(patient, custodian, records, leaves, n);
            n += records.length;
        }
        batchId = _batchCount;
        _anchorBatch(batchId, custodian, MerkleRoot.compute(leaves), total);
    }

    /// @inheritdoc IRecordRegistry
    function eraseBySig(
        Erasure calldata erasure,
        AnchoredRecord calldata record,
        bytes32[] calldata proof,
        bytes calldata signature
    ) external {
        (address relayerMember,) = _memberRegistry.activeSender(msg.sender);
        if (relayerMember == address(0)) revert RecordRegistryNotActiveMember(msg.sender);
        RecordId id = erasure.recordId;
        if (block.timestamp > erasure.deadline) revert RecordRegistryExpiredSignature(erasure.deadline);
        if (_erased[id]) revert RecordRegistryAlreadyErased(RecordId.unwrap(id));
        bytes32 root = _roots[record.batchId];
        if (
            !(record.recordId == id) || record.patient != erasure.patient || root == bytes32(0)
                || !MerkleProof.verifyCalldata(proof, root, _leaf(record))
        ) revert RecordRegistryInvalidProof(RecordId.unwrap(id), record.batchId);
        _checkSignature(erasure.patient, _hashTypedDataV4(erasure.hash()), signature);
        _useNonce(erasure.patient, erasure.nonce);
        _erase(record);
    }

    /// @inheritdoc IRecordRegistry
    function enrollmentOf(address patient, address custodian) external view returns (bytes32) {
        return _enrollments[patient][custodian];
    }

    /// @inheritdoc IRecordRegistry
    function batchRoot(uint256 batchId) external view returns (bytes32) {
        return _roots[batchId];
    }

    /// @inheritdoc IRecordRegistry
    function batchCount() external view returns (uint256) {
        return _batchCount;
    }

    /// @inheritdoc IRecordRegistry
    function isErased(RecordId recordId) external view returns (bool) {
        return _erased[recordId];
    }

    /// @inheritdoc IRecordRegistry
    function maxBatchSize() external pure returns (uint256) {
        return MAX_BATCH_SIZE;
    }

    /// @inheritdoc IRecordRegistry
    function recordIdOf(address custodian, address patient, bytes32 commitment) external pure returns (RecordId) {
        return RecordHashes.idOf(custodian, patient, commitment);
    }

    /// @inheritdoc IRecordRegistry
    function leafHash(AnchoredRecord calldata record) external pure returns (bytes32) {
        return _leaf(record);
    }

    /// @inheritdoc IRecordRegistry
    function enrollmentDigest(Enrollment calldata enrollment) external view returns (bytes32) {
        return _hashTypedDataV4(enrollment.hash());
    }

    /// @inheritdoc IRecordRegistry
    function erasureDigest(Erasure calldata erasure) external view returns (bytes32) {
        return _hashTypedDataV4(erasure.hash());
    }

    /// @inheritdoc IRecordRegistry
    function memberRegistry() external view returns (address) {
        return address(_memberRegistry);
    }

    function _requireActiveClinic() private view returns (address member) {
        Role role;
        (member, role) = _memberRegistry.activeSender(msg.sender);
        if (member == address(0) || role != Role.CLINIC) revert RecordRegistryNotActiveMember(msg.sender);
    }

    function _checkSignature(address patient, bytes32 digest, bytes calldata signature) private view {
        if (!SignatureChecker.isValidSignatureNowCalldata(patient, digest, signature)) {
            revert RecordRegistryInvalidSignature(patient);
        }
    }

    function _leaf(AnchoredRecord calldata r) private pure returns (bytes32) {
        return RecordHashes.leaf(r.recordId, r.patient, r.custodian, r.category, r.commitment, r.supersedes);
    }

    function _enroll(address patient, address custodian, bytes32 referenceCommitment) private {
        _enrollments[patient][custodian] = referenceCommitment;
        emit PatientEnrolled(patient, custodian, referenceCommitment, msg.sender);
    }

    /// @dev Emits each record's event and writes its leaf into `leaves` from `first` on; the
    /// records themselves are not stored. This is the hot loop of anchoring, hence assembly:
    /// per record it reads three calldata words, derives the id, hashes the leaf and logs,
    /// reusing one scratch area past the free-memory pointer (which it does not move).
    function _anchorRecords(
        address patient,
        address custodian,
        RecordEntry[] calldata records,
        bytes32[] memory leaves,
        uint256 first
    ) private {
        assembly ("memory-safe") {
            let src := records.offset
            let end := add(src, mul(records.length, 0x60))
            let m := mload(0x40)
            let dst := add(leaves, mul(add(first, 1), 0x20))
            for {} lt(src, end) { src := add(src, 0x60) } {
                let category := calldataload(src)
                let commitment := calldataload(add(src, 0x20))
                if or(iszero(commitment), gt(category, MAX_CATEGORY)) {
                    mstore(0x00, shl(224, INVALID_RECORD_SELECTOR))
                    mstore(0x04, commitment)
                    revert(0x00, 0x24)
                }
                // recordId = keccak256(abi.encode(custodian, patient, commitment))
                mstore(m, custodian)
                mstore(add(m, 0x20), patient)
                mstore(add(m, 0x40), commitment)
                let id := keccak256(m, 0x60)
                // leaf = keccak256(abi.encode(id, patient, custodian, category, commitment, supersedes))
                mstore(m, id)
                mstore(add(m, 0x20), patient)
                mstore(add(m, 0x40), custodian)
                mstore(add(m, 0x60), category)
                mstore(add(m, 0x80), commitment)
                mstore(add(m, 0xa0), calldataload(add(src, 0x40)))
                mstore(dst, keccak256(m, 0xc0))
                dst := add(dst, 0x20)
                // RecordAnchored(recordId, patient | custodian, category, commitment, supersedes)
                log3(add(m, 0x40), 0x80, RECORD_ANCHORED, id, patient)
            }
        }
    }

    function _anchorBatch(uint256 batchId, address custodian, bytes32 root, uint256 count) private {
        _roots[batchId] = root;
        _batchCount = batchId + 1;
        emit RecordBatchAnchored(batchId, custodian, root, count, msg.sender);
    }

    function _erase(AnchoredRecord calldata record) private {
        _erased[record.recordId] = true;
        emit RecordErased(record.recordId, record.patient, record.custodian, record.batchId, msg.sender);
    }
}
