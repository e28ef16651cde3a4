// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {Test} from "forge-std/Test.sol";
import {MemberRegistry} from "../../../contracts/MemberRegistry.sol";
import {ConsentRegistry} from "../../../contracts/ConsentRegistry.sol";
import {RecordRegistry} from "../../../contracts/RecordRegistry.sol";
import {AccessLog} from "../../../contracts/AccessLog.sol";
import {IConsentRegistry} from "../../../contracts/interfaces/IConsentRegistry.sol";
import {IRecordRegistry} from "../../../contracts/interfaces/IRecordRegistry.sol";
import {IAccessLog} from "../../../contracts/interfaces/IAccessLog.sol";
import {ConsentId, RecordId} from "../../../contracts/types/Ids.sol";
import {Category} from "../../../contracts/types/Codes.sol";
import {MerkleBuilder} from "./MerkleBuilder.sol";

/// @title Helpers shared by the fixture and the invariant handlers
/// @notice Signs the four EIP-712 messages with `vm.sign` over the contracts' own digests
/// (a dedicated test checks those digests against utils/Eip712.sol), builds anchor batches,
/// their leaves and proofs, and access-log entries.
/// @dev Every helper that calls a contract must run before `vm.prank` / `vm.expectRevert`,
/// which apply to the next external call.
abstract contract CareLedgerBase is Test {
    MemberRegistry internal registry;
    ConsentRegistry internal consents;
    RecordRegistry internal records;
    AccessLog internal accessLog;

    uint256 private _nonceCounter;

    // ------------------------------------------------------------------ signatures

    /// @dev 65 bytes r ‖ s ‖ v.
    function _sign(uint256 privateKey, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(privateKey, digest);
        return abi.encodePacked(r, s, v);
    }

    function _signGrant(uint256 privateKey, IConsentRegistry.Grant memory g) internal view returns (bytes memory) {
        return _sign(privateKey, consents.grantDigest(g));
    }

    function _signRevocation(uint256 privateKey, IConsentRegistry.Revocation memory r)
        internal
        view
        returns (bytes memory)
    {
        return _sign(privateKey, consents.revocationDigest(r));
    }

    function _signEnrollment(uint256 privateKey, IRecordRegistry.Enrollment memory e)
        internal
        view
        returns (bytes memory)
    {
        return _sign(privateKey, records.enrollmentDigest(e));
    }

    function _signErasure(uint256 privateKey, IRecordRegistry.Erasure memory e) internal view returns (bytes memory) {
        return _sign(privateKey, records.erasureDigest(e));
    }

    /// @dev A nonce not used before in this test (nonces are unordered, any fresh one works).
    function _freshNonce() internal returns (uint256) {
        return uint256(keccak256(abi.encode("nonce", ++_nonceCounter)));
    }

    // ------------------------------------------------------------------ messages

    function _grantMsg(address patient, address grantee, uint16 categories, uint8 purposes)
        internal
        returns (IConsentRegistry.Grant memory)
    {
        return IConsentRegistry.Grant({
            patient: patient,
            grantee: grantee,
            categories: categories,
            purposes: purposes,
            validFrom: uint40(block.timestamp),
            validUntil: uint40(block.timestamp + 365 days),
            nonce: _freshNonce(),
            deadline: block.timestamp + 1 hours
        });
    }

    function _revocationMsg(address patient, ConsentId consentId)
        internal
        returns (IConsentRegistry.Revocation memory)
    {
        return IConsentRegistry.Revocation({
            patient: patient, consentId: consentId, nonce: _freshNonce(), deadline: block.timestamp + 1 hours
        });
    }

    function _enrollmentMsg(address patient, address custodian) internal returns (IRecordRegistry.Enrollment memory) {
        return IRecordRegistry.Enrollment({
            patient: patient,
            custodian: custodian,
            referenceCommitment: keccak256(abi.encode("salt", patient, custodian, "MRN-0001")),
            nonce: _freshNonce(),
            deadline: block.timestamp + 1 hours
        });
    }

    function _erasureMsg(address patient, RecordId recordId) internal returns (IRecordRegistry.Erasure memory) {
        return IRecordRegistry.Erasure({
            patient: patient, recordId: recordId, nonce: _freshNonce(), deadline: block.timestamp + 1 hours
        });
    }

    // ------------------------------------------------------------------ anchoring

    /// @dev A valid record derived from `seed`.
    function _entry(uint256 seed) internal pure returns (IRecordRegistry.RecordEntry memory) {
        return IRecordRegistry.RecordEntry({
            category: uint8(seed % Category.COUNT),
            commitment: keccak256(abi.encode("commitment", seed)),
            supersedes: RecordId.wrap(0)
        });
    }

    /// @dev `count` records derived from seeds `firstSeed`, `firstSeed + 1`, ...
    function _entries(uint256 firstSeed, uint256 count)
        internal
        pure
        returns (IRecordRegistry.RecordEntry[] memory list)
    {
        list = new IRecordRegistry.RecordEntry[](count);
        for (uint256 i = 0; i < count; ++i) {
            unchecked {
                list[i] = _entry(firstSeed + i);
            }
        }
    }

    function _batchOf(address patient, IRecordRegistry.RecordEntry[] memory list)
        internal
        pure
        returns (IRecordRegistry.PatientRecords[] memory batch)
    {
        batch = new IRecordRegistry.PatientRecords[](1);
        batch[0] = IRecordRegistry.PatientRecords({patient: patient, records: list});
    }

    function _countOf(IRecordRegistry.PatientRecords[] memory batch) internal pure returns (uint256 n) {
        for (uint256 g = 0; g < batch.length; ++g) {
            n += batch[g].records.length;
        }
    }

    /// @dev The batch's records in anchoring order, as they stand in the tree.
    function _anchoredRecords(uint256 batchId, address custodian, IRecordRegistry.PatientRecords[] memory batch)
        internal
        pure
        returns (IRecordRegistry.AnchoredRecord[] memory flat)
    {
        flat = new IRecordRegistry.AnchoredRecord[](_countOf(batch));
        uint256 n = 0;
        for (uint256 g = 0; g < batch.length; ++g) {
            for (uint256 i = 0; i < batch[g].records.length; ++i) {
                IRecordRegistry.RecordEntry memory r = batch[g].records[i];
                flat[n++] = IRecordRegistry.AnchoredRecord({
                    batchId: batchId,
                    patient: batch[g].patient,
                    custodian: custodian,
                    recordId: _idOf(custodian, batch[g].patient, r.commitment),
                    category: r.category,
                    commitment: r.commitment,
                    supersedes: r.supersedes
                });
            }
        }
    }

    /// @dev A record's id, written independently of RecordHashes.
    function _idOf(address custodian, address patient, bytes32 commitment) internal pure returns (RecordId) {
        return RecordId.wrap(keccak256(abi.encode(custodian, patient, commitment)));
    }

    /// @dev The leaf, written independently of RecordHashes: keccak256 of the record's ABI encoding
    /// (192 bytes, so no 64-byte inner node of the tree can pass for a leaf).
    function _leafOf(IRecordRegistry.AnchoredRecord memory r) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                RecordId.unwrap(r.recordId),
                r.patient,
                r.custodian,
                uint256(r.category),
                r.commitment,
                RecordId.unwrap(r.supersedes)
            )
        );
    }

    function _leavesOf(IRecordRegistry.AnchoredRecord[] memory flat) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](flat.length);
        for (uint256 i = 0; i < flat.length; ++i) {
            leaves[i] = _leafOf(flat[i]);
        }
    }

    function _rootOf(IRecordRegistry.AnchoredRecord[] memory flat) internal pure returns (bytes32) {
        return MerkleBuilder.root(_leavesOf(flat));
    }

    // ------------------------------------------------------------------ access log

    /// @dev A valid consent-based disclosure checked at the current block, signed by `requesterKey`
    /// over a stand-in request hash, in EIP-2098 compact form.
    function _disclosure(RecordId recordId, uint256 requesterKey, uint8 purpose, ConsentId consentId)
        internal
        view
        returns (IAccessLog.Disclosure memory d)
    {
        bytes32 requestHash = keccak256(abi.encode("RFC 9421 signature base", recordId, requesterKey, purpose));
        (bytes32 r, bytes32 vs) = _signCompact(requesterKey, requestHash);
        d = IAccessLog.Disclosure({
            recordId: recordId,
            meta: _meta(vm.addr(requesterKey), uint64(block.number), purpose, false),
            basis: ConsentId.unwrap(consentId),
            requestHash: requestHash,
            sigR: r,
            sigVS: vs
        });
    }

    /// @dev The packed meta word, written independently of DisclosureMeta: bits 0-159 requester,
    /// 160-223 checkedBlock, 224-231 purpose, 232 breakGlass.
    function _meta(address requester, uint64 checkedBlock, uint8 purpose, bool breakGlass)
        internal
        pure
        returns (uint256)
    {
        uint256 meta = uint256(uint160(requester));
        meta += uint256(checkedBlock) * 2 ** 160;
        meta += uint256(purpose) * 2 ** 224;
        if (breakGlass) meta += 2 ** 232;
        return meta;
    }

    /// @dev EIP-2098: r, and (v - 27) << 255 | s.
    function _signCompact(uint256 privateKey, bytes32 digest) internal pure returns (bytes32 r, bytes32 vs) {
        (uint8 v, bytes32 r_, bytes32 s) = vm.sign(privateKey, digest);
        r = r_;
        vs = bytes32((uint256(v - 27) << 255) | uint256(s));
    }

    function _one(IAccessLog.Disclosure memory d) internal pure returns (IAccessLog.Disclosure[] memory list) {
        list = new IAccessLog.Disclosure[](1);
        list[0] = d;
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
