// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";
import {ConsentHashes} from "./libraries/ConsentHashes.sol";
import {ConsentId} from "./types/Ids.sol";
import {Category, Purpose} from "./types/Codes.sol";
import {UnorderedNonces} from "./utils/UnorderedNonces.sol";

/// @title CareLedger consent registry
/// @notice Stores each consent in one slot keyed by (patient, grantee, index), so a patient's
/// first grant writes two fresh slots: the consent and the patient's nonce word.
contract ConsentRegistry is IConsentRegistry, EIP712, UnorderedNonces {
    using ConsentHashes for Grant;
    using ConsentHashes for Revocation;

    uint256 private constant MAX_CONSENTS_PER_PAIR = 64;
    uint256 private constant MAX_GRANT_BATCH = 100;

    IMemberRegistry private immutable _memberRegistry;
    mapping(bytes32 pair => mapping(uint256 index => Consent)) private _consents;

    constructor(IMemberRegistry memberRegistry_) EIP712("CareLedger ConsentRegistry", "1") {
        _memberRegistry = memberRegistry_;
    }

    /// @inheritdoc IConsentRegistry
    function grantBySig(Grant calldata grant, bytes calldata signature) external returns (ConsentId) {
        _requireActiveSender();
        if (block.timestamp > grant.deadline) revert ConsentRegistryExpiredSignature(grant.deadline);
        if (
            grant.categories == 0 || grant.categories & ~Category.ALL != 0 || grant.purposes == 0
                || grant.purposes & ~Purpose.GRANTABLE != 0
        ) revert ConsentRegistryInvalidScope(grant.categories, grant.purposes);
        if (grant.validUntil <= grant.validFrom || grant.validUntil <= block.timestamp) {
            revert ConsentRegistryInvalidWindow(grant.validFrom, grant.validUntil);
        }
        (, IMemberRegistry.KeyKind kind) = _memberRegistry.keyOf(grant.grantee);
        if (kind != IMemberRegistry.KeyKind.ADMIN) revert ConsentRegistryUnknownGrantee(grant.grantee);
        _checkSignature(grant.patient, _hashTypedDataV4(grant.hash()), signature);
        _useNonce(grant.patient, grant.nonce);

        bytes32 pair = ConsentHashes.pairKey(grant.patient, grant.grantee);
        uint256 index = _count(pair);
        if (index == MAX_CONSENTS_PER_PAIR) revert ConsentRegistryTooManyConsents(grant.patient, grant.grantee);
        return _grant(pair, index, grant);
    }

    /// @inheritdoc IConsentRegistry
    /// @dev The same checks as grantBySig, item by item, but a failing item is skipped (its
    /// nonce stays unused) instead of reverting the batch: one patient's stale or replayed
    /// signature must not cost the others their grant. Which items were granted is told by
    /// their ConsentGranted events, the very events grantBySig emits.
    function grantBatchBySig(Grant[] calldata grants, bytes[] calldata signatures) external returns (uint256 granted) {
        _requireActiveSender();
        uint256 count = grants.length;
        if (count == 0 || count > MAX_GRANT_BATCH || signatures.length != count) {
            revert ConsentRegistryInvalidBatch(count, signatures.length);
        }
        for (uint256 i = 0; i < count; ++i) {
            if (_tryGrant(grants[i], signatures[i])) ++granted;
        }
    }

    /// @inheritdoc IConsentRegistry
    function maxGrantBatch() external pure returns (uint256) {
        return MAX_GRANT_BATCH;
    }

    /// @inheritdoc IConsentRegistry
    function revokeBySig(Revocation calldata revocation, address grantee, uint256 index, bytes calldata signature)
        external
    {
        _requireActiveSender();
        if (block.timestamp > revocation.deadline) revert ConsentRegistryExpiredSignature(revocation.deadline);
        ConsentId id = revocation.consentId;
        if (index >= MAX_CONSENTS_PER_PAIR || !(ConsentHashes.consentId(revocation.patient, grantee, index) == id)) {
            revert ConsentRegistryUnknownConsent(id);
        }
        bytes32 pair = ConsentHashes.pairKey(revocation.patient, grantee);
        Consent storage c = _consents[pair][index];
        if (c.validUntil == 0) revert ConsentRegistryUnknownConsent(id);
        if (c.revoked) revert ConsentRegistryAlreadyRevoked(id);
        _checkSignature(revocation.patient, _hashTypedDataV4(revocation.hash()), signature);
        _useNonce(revocation.patient, revocation.nonce);
        _revoke(c, id, revocation.patient, grantee);
    }

    /// @inheritdoc IConsentRegistry
    function isPermitted(address patient, address grantee, uint8 category, uint8 purpose)
        external
        view
        returns (bool, ConsentId)
    {
        if (category >= Category.COUNT || purpose >= Purpose.COUNT) {
            revert ConsentRegistryInvalidCode(category, purpose);
        }
        bytes32 pair = ConsentHashes.pairKey(patient, grantee);
        for (uint256 i = 0; i < MAX_CONSENTS_PER_PAIR; ++i) {
            Consent memory c = _consents[pair][i];
            if (c.validUntil == 0) break;
            if (
                !c.revoked && c.validFrom <= block.timestamp && block.timestamp < c.validUntil
                    && (c.categories >> category) & 1 == 1 && (c.purposes >> purpose) & 1 == 1
            ) return (true, ConsentHashes.consentId(patient, grantee, i));
        }
        return (false, ConsentId.wrap(0));
    }

    /// @inheritdoc IConsentRegistry
    function getConsent(address patient, address grantee, uint256 index) external view returns (Consent memory) {
        return _consents[ConsentHashes.pairKey(patient, grantee)][index];
    }

    /// @inheritdoc IConsentRegistry
    function consentCount(address patient, address grantee) external view returns (uint256) {
        return _count(ConsentHashes.pairKey(patient, grantee));
    }

    /// @inheritdoc IConsentRegistry
    function maxConsentsPerPair() external pure returns (uint256) {
        return MAX_CONSENTS_PER_PAIR;
    }

    /// @inheritdoc IConsentRegistry
    function consentIdOf(address patient, address grantee, uint256 index) external pure returns (ConsentId) {
        return ConsentHashes.consentId(patient, grantee, index);
    }

    /// @inheritdoc IConsentRegistry
    function grantDigest(Grant calldata grant) external view returns (bytes32) {
        return _hashTypedDataV4(grant.hash());
    }

    /// @inheritdoc IConsentRegistry
    function revocationDigest(Revocation calldata revocation) external view returns (bytes32) {
        return _hashTypedDataV4(revocation.hash());
    }

    /// @inheritdoc IConsentRegistry
    function memberRegistry() external view returns (address) {
        return address(_memberRegistry);
    }

    function _requireActiveSender() private view {
        (address member,) = _memberRegistry.activeSender(msg.sender);
        if (member == address(0)) revert ConsentRegistryNotActiveMember(msg.sender);
    }

    function _checkSignature(address patient, bytes32 digest, bytes calldata signature) private view {
        if (!SignatureChecker.isValidSignatureNowCalldata(patient, digest, signature)) {
            revert ConsentRegistryInvalidSignature(patient);
        }
    }

    /// @dev grantBySig's checks without reverting: false (and nothing written) when any fails.
    function _tryGrant(Grant calldata grant, bytes calldata signature) private returns (bool) {
        if (
            block.timestamp > grant.deadline || grant.categories == 0 || grant.categories & ~Category.ALL != 0
                || grant.purposes == 0 || grant.purposes & ~Purpose.GRANTABLE != 0
                || grant.validUntil <= grant.validFrom || grant.validUntil <= block.timestamp
                || nonceUsed(grant.patient, grant.nonce)
        ) return false;
        (, IMemberRegistry.KeyKind kind) = _memberRegistry.keyOf(grant.grantee);
        if (kind != IMemberRegistry.KeyKind.ADMIN) return false;
        bytes32 pair = ConsentHashes.pairKey(grant.patient, grant.grantee);
        uint256 index = _count(pair);
        if (index == MAX_CONSENTS_PER_PAIR) return false;
        if (!SignatureChecker.isValidSignatureNowCalldata(grant.patient, _hashTypedDataV4(grant.hash()), signature)) {
            return false;
        }
        _useNonce(grant.patient, grant.nonce);
        _grant(pair, index, grant);
        return true;
    }

    /// @dev Consents of a pair fill indexes 0, 1, ... and are never deleted.
    function _count(bytes32 pair) private view returns (uint256 n) {
        while (n < MAX_CONSENTS_PER_PAIR && _consents[pair][n].validUntil != 0) ++n;
    }

    function _grant(bytes32 pair, uint256 index, Grant calldata g) private returns (ConsentId id) {
        _consents[pair][index] = Consent({
            categories: g.categories,
            purposes: g.purposes,
            validFrom: g.validFrom,
            validUntil: g.validUntil,
            revoked: false
        });
        id = ConsentHashes.consentId(g.patient, g.grantee, index);
        emit ConsentGranted(
            id, g.patient, g.grantee, index, g.categories, g.purposes, g.validFrom, g.validUntil, msg.sender
        );
    }

    function _revoke(Consent storage c, ConsentId id, address patient, address grantee) private {
        c.revoked = true;
        emit ConsentRevoked(id, patient, grantee, msg.sender);
    }
}
