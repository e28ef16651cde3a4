// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "../interfaces/IConsentRegistry.sol";
import {ConsentId} from "../types/Ids.sol";

/// @title EIP-712 struct hashes and ids of consents
library ConsentHashes {
    bytes32 internal constant GRANT_TYPEHASH = keccak256(
        "Grant(address patient,address grantee,uint16 categories,uint8 purposes,uint40 validFrom,uint40 validUntil,uint256 nonce,uint256 deadline)"
    );

    bytes32 internal constant REVOCATION_TYPEHASH =
        keccak256("Revocation(address patient,bytes32 consentId,uint256 nonce,uint256 deadline)");

    function hash(IConsentRegistry.Grant calldata g) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                g.patient,
                g.grantee,
                g.categories,
                g.purposes,
                g.validFrom,
                g.validUntil,
                g.nonce,
                g.deadline
            )
        );
    }

    function hash(IConsentRegistry.Revocation calldata r) internal pure returns (bytes32) {
        return keccak256(abi.encode(REVOCATION_TYPEHASH, r.patient, ConsentId.unwrap(r.consentId), r.nonce, r.deadline));
    }

    /// @dev Storage key of a (patient, grantee) pair.
    function pairKey(address patient, address grantee) internal pure returns (bytes32) {
        return keccak256(abi.encode(patient, grantee));
    }

    function consentId(address patient, address grantee, uint256 index) internal pure returns (ConsentId) {
        return ConsentId.wrap(keccak256(abi.encode(patient, grantee, index)));
    }
}
