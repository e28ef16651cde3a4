// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {RecordId} from "../types/Ids.sol";

/// @title CareLedger record registry
/// @notice Patients enrol at custodians by EIP-712 signature; custodians (active CLINIC
/// members) anchor salted record commitments in batches, one event per record and one
/// Merkle root per batch in storage; a record is marked erased only with its patient's
/// EIP-712 signature and a Merkle proof that it was anchored for that patient.
interface IRecordRegistry {
    /// @notice What a patient signs to enrol at a custodian.
    /// @param referenceCommitment keccak256(salt ‖ local patient reference), never the reference itself.
    struct Enrollment {
        address patient;
        address custodian;
        bytes32 referenceCommitment;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice One record version to anchor. Its id is not sent: it is
    /// keccak256(abi.encode(custodian, patient, commitment)), so an id names one commitment
    /// of one patient at one custodian.
    /// @param commitment keccak256(salt ‖ sha256(plaintext) ‖ sha256(ciphertext)); the random
    /// salt makes it, and so the id, unique.
    /// @param supersedes The version this one replaces, or zero.
    struct RecordEntry {
        uint8 category;
        bytes32 commitment;
        RecordId supersedes;
    }

    /// @notice The records of one patient within a batch.
    struct PatientRecords {
        address patient;
        RecordEntry[] records;
    }

    /// @notice What a patient signs to have one of their records marked erased.
    struct Erasure {
        address patient;
        RecordId recordId;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice An anchored record as it stands in its batch's Merkle tree.
    struct AnchoredRecord {
        uint256 batchId;
        address patient;
        address custodian;
        RecordId recordId;
        uint8 category;
        bytes32 commitment;
        RecordId supersedes;
    }

    /// @notice Emitted when a patient enrols (or re-enrols) at a custodian.
    event PatientEnrolled(
        address indexed patient, address indexed custodian, bytes32 referenceCommitment, address relayer
    );

    /// @notice Emitted once per batch, right after the batch's RecordAnchored events in the same transaction.
    /// @param root Merkle root over the batch's record leaves (sorted-pair keccak256, as OpenZeppelin MerkleProof).
    event RecordBatchAnchored(
        uint256 indexed batchId, address indexed custodian, bytes32 root, uint256 count, address relayer
    );

    /// @notice Emitted for every anchored record, with every field an auditor needs.
    /// @dev The custodian is data, not a topic (119 gas a record); the batch event that follows
    /// indexes it.
    event RecordAnchored(
        RecordId indexed recordId,
        address indexed patient,
        address custodian,
        uint8 category,
        bytes32 commitment,
        RecordId supersedes
    );

    /// @notice Emitted when a record is marked erased at its patient's request.
    event RecordErased(
        RecordId indexed recordId, address indexed patient, address indexed custodian, uint256 batchId, address relayer
    );

    /// @notice Thrown when the sender does not act for an active member (of the role needed).
    error RecordRegistryNotActiveMember(address sender);
    /// @notice Thrown when an enrollment names another custodian than the sender's member.
    error RecordRegistryWrongCustodian(address custodian, address sender);
    /// @notice Thrown when the signature's deadline has passed.
    error RecordRegistryExpiredSignature(uint256 deadline);
    /// @notice Thrown when the signature is not the patient's over this message.
    error RecordRegistryInvalidSignature(address patient);
    /// @notice Thrown for a zero reference commitment.
    error RecordRegistryInvalidEnrollment();
    /// @notice Thrown when anchoring for a patient not enrolled at the custodian.
    error RecordRegistryNotEnrolled(address patient, address custodian);
    /// @notice Thrown for an empty batch or one above the size limit.
    error RecordRegistryInvalidBatchSize(uint256 count);
    /// @notice Thrown for a record with a zero commitment or an unknown category.
    error RecordRegistryInvalidRecord(bytes32 commitment);
    /// @notice Thrown when the proof does not show the record in the named batch for this patient.
    error RecordRegistryInvalidProof(bytes32 recordId, uint256 batchId);
    /// @notice Thrown when marking a record erased twice.
    error RecordRegistryAlreadyErased(bytes32 recordId);

    /// @notice Records a patient's signed enrollment; the caller must act for the custodian, an active CLINIC.
    function enrollBySig(Enrollment calldata enrollment, bytes calldata signature) external;

    /// @notice Anchors one batch of records for enrolled patients; the caller must act for an active CLINIC.
    /// @return batchId The batch's id.
    function anchor(PatientRecords[] calldata batch) external returns (uint256 batchId);

    /// @notice Marks a record erased with its patient's signature; any active member may relay it.
    /// @param record The record as anchored, with `proof` showing it under its batch's root.
    function eraseBySig(
        Erasure calldata erasure,
        AnchoredRecord calldata record,
        bytes32[] calldata proof,
        bytes calldata signature
    ) external;

    /// @notice The reference commitment of `patient` at `custodian`, zero if not enrolled.
    function enrollmentOf(address patient, address custodian) external view returns (bytes32);

    /// @notice The Merkle root of a batch, zero if no such batch.
    function batchRoot(uint256 batchId) external view returns (bytes32);

    /// @notice Number of batches anchored.
    function batchCount() external view returns (uint256);

    /// @notice Whether a record was marked erased.
    function isErased(RecordId recordId) external view returns (bool);

    /// @notice Most records one batch may carry (the per-transaction gas cap bounds it).
    function maxBatchSize() external pure returns (uint256);

    /// @notice The id a record of `patient` anchored by `custodian` with `commitment` gets.
    function recordIdOf(address custodian, address patient, bytes32 commitment) external pure returns (RecordId);

    /// @notice The Merkle leaf of an anchored record.
    function leafHash(AnchoredRecord calldata record) external pure returns (bytes32);

    /// @notice EIP-712 digest a patient signs for `enrollment`.
    function enrollmentDigest(Enrollment calldata enrollment) external view returns (bytes32);

    /// @notice EIP-712 digest a patient signs for `erasure`.
    function erasureDigest(Erasure calldata erasure) external view returns (bytes32);

    /// @notice The member registry this registry asks about members.
    function memberRegistry() external view returns (address);
}
