// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsentId} from "../types/Ids.sol";

/// @title CareLedger consent registry
/// @notice Patients' consents, each granted and revoked by the patient's EIP-712 signature
/// (ERC-1271 for contract wallets) and relayed by any active member. Consents accumulate:
/// each has its own id and a revocation names the consent it ends.
interface IConsentRegistry {
    /// @notice What a patient signs to grant a consent.
    /// @param categories Bitmask of data categories (bit i = category i, see Codes.sol).
    /// @param purposes Bitmask of purposes of use (bit i = purpose i; BTG is never grantable).
    /// @param validFrom First second (unix time) the consent permits.
    /// @param validUntil First second it no longer permits.
    /// @param nonce Any nonce the patient has not used (unordered).
    /// @param deadline Last second the signature may be relayed.
    struct Grant {
        address patient;
        address grantee;
        uint16 categories;
        uint8 purposes;
        uint40 validFrom;
        uint40 validUntil;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice What a patient signs to revoke one of their consents.
    struct Revocation {
        address patient;
        ConsentId consentId;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice A consent as stored: one slot, keyed by (patient, grantee, index).
    struct Consent {
        uint16 categories;
        uint8 purposes;
        uint40 validFrom;
        uint40 validUntil;
        bool revoked;
    }

    /// @notice Emitted when a consent is granted.
    /// @param index Position of the consent among the (patient, grantee) pair's consents.
    /// @param relayer The transaction sender (an active member's key).
    event ConsentGranted(
        ConsentId indexed consentId,
        address indexed patient,
        address indexed grantee,
        uint256 index,
        uint16 categories,
        uint8 purposes,
        uint40 validFrom,
        uint40 validUntil,
        address relayer
    );

    /// @notice Emitted when a consent is revoked; it stops permitting in this block.
    event ConsentRevoked(ConsentId indexed consentId, address indexed patient, address indexed grantee, address relayer);

    /// @notice Thrown when the transaction sender does not act for an active member.
    error ConsentRegistryNotActiveMember(address sender);
    /// @notice Thrown when the grantee was never admitted as a member.
    error ConsentRegistryUnknownGrantee(address grantee);
    /// @notice Thrown when the signature's deadline has passed.
    error ConsentRegistryExpiredSignature(uint256 deadline);
    /// @notice Thrown when the signature is not the patient's over this message.
    error ConsentRegistryInvalidSignature(address patient);
    /// @notice Thrown for an empty or unknown category or purpose set (BTG included).
    error ConsentRegistryInvalidScope(uint16 categories, uint8 purposes);
    /// @notice Thrown for a validity window that is empty or already over.
    error ConsentRegistryInvalidWindow(uint40 validFrom, uint40 validUntil);
    /// @notice Thrown when a pair already holds the maximum number of consents.
    error ConsentRegistryTooManyConsents(address patient, address grantee);
    /// @notice Thrown when no consent has this id for this patient and grantee.
    error ConsentRegistryUnknownConsent(ConsentId consentId);
    /// @notice Thrown when revoking a consent twice.
    error ConsentRegistryAlreadyRevoked(ConsentId consentId);
    /// @notice Thrown for an empty or oversized batch, or one with a signature count that differs.
    error ConsentRegistryInvalidBatch(uint256 grants, uint256 signatures);
    /// @notice Thrown for a category or purpose code out of range in a query.
    error ConsentRegistryInvalidCode(uint8 category, uint8 purpose);

    /// @notice Records a consent the patient signed; the caller must act for an active member.
    /// @return consentId The new consent's id.
    function grantBySig(Grant calldata grant, bytes calldata signature) external returns (ConsentId consentId);

    /// @notice Records several consents in one transaction, each as grantBySig would; an item
    /// that grantBySig would refuse is skipped, not reverted (its nonce stays unused).
    /// @return granted How many items were granted (each emitted ConsentGranted).
    function grantBatchBySig(Grant[] calldata grants, bytes[] calldata signatures) external returns (uint256 granted);

    /// @notice Most grants one grantBatchBySig call takes.
    function maxGrantBatch() external pure returns (uint256);

    /// @notice Revokes a consent with the patient's signature; effective in this block.
    /// @param grantee The consent's grantee and `index` its position, which locate it in storage.
    function revokeBySig(Revocation calldata revocation, address grantee, uint256 index, bytes calldata signature)
        external;

    /// @notice Whether some live consent of `patient` lets `grantee` see `category` for `purpose` now.
    /// @return permitted True if such a consent exists.
    /// @return consentId The first such consent (zero when not permitted).
    function isPermitted(address patient, address grantee, uint8 category, uint8 purpose)
        external
        view
        returns (bool permitted, ConsentId consentId);

    /// @notice The consent at `index` of the (patient, grantee) pair.
    function getConsent(address patient, address grantee, uint256 index) external view returns (Consent memory);

    /// @notice Number of consents the pair ever had.
    function consentCount(address patient, address grantee) external view returns (uint256);

    /// @notice Most consents a (patient, grantee) pair may ever hold.
    function maxConsentsPerPair() external pure returns (uint256);

    /// @notice The id of the consent at `index` of the (patient, grantee) pair.
    function consentIdOf(address patient, address grantee, uint256 index) external pure returns (ConsentId);

    /// @notice EIP-712 digest a patient signs for `grant`.
    function grantDigest(Grant calldata grant) external view returns (bytes32);

    /// @notice EIP-712 digest a patient signs for `revocation`.
    function revocationDigest(Revocation calldata revocation) external view returns (bytes32);

    /// @notice The member registry this registry asks about members.
    function memberRegistry() external view returns (address);
}
