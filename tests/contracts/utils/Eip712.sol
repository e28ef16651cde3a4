// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {IConsentRegistry} from "../../../contracts/interfaces/IConsentRegistry.sol";
import {IRecordRegistry} from "../../../contracts/interfaces/IRecordRegistry.sol";
import {ConsentId, RecordId} from "../../../contracts/types/Ids.sol";

/// @title EIP-712 digests computed independently of the contracts' libraries
/// @notice The type strings are written out here from the structs in the interfaces, so a
/// typo in a contract's typehash shows up as a digest mismatch.
library Eip712 {
    string internal constant DOMAIN_TYPE =
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
    string internal constant GRANT_TYPE =
        "Grant(address patient,address grantee,uint16 categories,uint8 purposes,uint40 validFrom,uint40 validUntil,uint256 nonce,uint256 deadline)";
    string internal constant REVOCATION_TYPE =
        "Revocation(address patient,bytes32 consentId,uint256 nonce,uint256 deadline)";
    string internal constant ENROLLMENT_TYPE =
        "Enrollment(address patient,address custodian,bytes32 referenceCommitment,uint256 nonce,uint256 deadline)";
    string internal constant ERASURE_TYPE = "Erasure(address patient,bytes32 recordId,uint256 nonce,uint256 deadline)";

    string internal constant CONSENT_DOMAIN = "CareLedger ConsentRegistry";
    string internal constant RECORD_DOMAIN = "CareLedger RecordRegistry";
    string internal constant VERSION = "1";

    function domainSeparator(string memory name, address verifyingContract) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(bytes(DOMAIN_TYPE)),
                keccak256(bytes(name)),
                keccak256(bytes(VERSION)),
                block.chainid,
                verifyingContract
            )
        );
    }

    function typedDigest(bytes32 domain, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", domain, structHash));
    }

    function grantDigest(address registry, IConsentRegistry.Grant memory g) internal view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(bytes(GRANT_TYPE)),
                g.patient,
                g.grantee,
                uint256(g.categories),
                uint256(g.purposes),
                uint256(g.validFrom),
                uint256(g.validUntil),
                g.nonce,
                g.deadline
            )
        );
        return typedDigest(domainSeparator(CONSENT_DOMAIN, registry), structHash);
    }

    function revocationDigest(address registry, IConsentRegistry.Revocation memory r) internal view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(keccak256(bytes(REVOCATION_TYPE)), r.patient, ConsentId.unwrap(r.consentId), r.nonce, r.deadline)
        );
        return typedDigest(domainSeparator(CONSENT_DOMAIN, registry), structHash);
    }

    function enrollmentDigest(address registry, IRecordRegistry.Enrollment memory e) internal view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(bytes(ENROLLMENT_TYPE)), e.patient, e.custodian, e.referenceCommitment, e.nonce, e.deadline
            )
        );
        return typedDigest(domainSeparator(RECORD_DOMAIN, registry), structHash);
    }

    function erasureDigest(address registry, IRecordRegistry.Erasure memory e) internal view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(keccak256(bytes(ERASURE_TYPE)), e.patient, RecordId.unwrap(e.recordId), e.nonce, e.deadline)
        );
        return typedDigest(domainSeparator(RECORD_DOMAIN, registry), structHash);
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
