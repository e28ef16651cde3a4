// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {Fixture} from "./utils/Fixture.sol";
import {ConsentRegistry} from "../../contracts/ConsentRegistry.sol";
import {IConsentRegistry} from "../../contracts/interfaces/IConsentRegistry.sol";
import {ConsentId} from "../../contracts/types/Ids.sol";
import {Category, Purpose} from "../../contracts/types/Codes.sol";

/// @notice grantBatchBySig: grantBySig's rules item by item; failing items are skipped.
contract ConsentRegistryBatchTest is Fixture {
    uint16 internal constant LABS = uint16(1 << Category.OBSERVATIONS);
    uint8 internal constant PAY = uint8(1 << Purpose.HPAYMT);
    uint8 internal constant BTG = uint8(1 << Purpose.BTG);

    function _patients(uint256 n) internal returns (address[] memory who, uint256[] memory keys) {
        who = new address[](n);
        keys = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            (who[i], keys[i]) = makeAddrAndKey(string(abi.encodePacked("batch.patient.", vm.toString(i))));
        }
    }

    function _batch(uint256 n)
        internal
        returns (IConsentRegistry.Grant[] memory grants, bytes[] memory sigs, address[] memory who)
    {
        uint256[] memory keys;
        (who, keys) = _patients(n);
        grants = new IConsentRegistry.Grant[](n);
        sigs = new bytes[](n);
        for (uint256 i = 0; i < n; ++i) {
            grants[i] = _grantMsg(who[i], insurer, LABS, PAY);
            sigs[i] = _signGrant(keys[i], grants[i]);
        }
    }

    function _send(IConsentRegistry.Grant[] memory grants, bytes[] memory sigs) internal returns (uint256) {
        vm.prank(clinicARelayer);
        return consents.grantBatchBySig(grants, sigs);
    }

    function test_grantBatchBySig_grantsEveryValidItemWithGrantBySigsEvents() public {
        (IConsentRegistry.Grant[] memory grants, bytes[] memory sigs, address[] memory who) = _batch(3);
        for (uint256 i = 0; i < 3; ++i) {
            vm.expectEmit(true, true, true, true, address(consents));
            emit IConsentRegistry.ConsentGranted(
                consents.consentIdOf(who[i], insurer, 0),
                who[i],
                insurer,
                0,
                LABS,
                PAY,
                grants[i].validFrom,
                grants[i].validUntil,
                clinicARelayer
            );
        }
        assertEq(_send(grants, sigs), 3);
        for (uint256 i = 0; i < 3; ++i) {
            assertEq(consents.consentCount(who[i], insurer), 1);
            assertTrue(consents.nonceUsed(who[i], grants[i].nonce));
            (bool ok, ConsentId id) = consents.isPermitted(who[i], insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
            assertTrue(ok);
            assertEq(ConsentId.unwrap(id), ConsentId.unwrap(consents.consentIdOf(who[i], insurer, 0)));
        }
    }

    function test_grantBatchBySig_skipsEachKindOfInvalidItem() public {
        (IConsentRegistry.Grant[] memory grants, bytes[] memory sigs, address[] memory who) = _batch(8);
        grants[1].deadline = block.timestamp - 1; // expired (signature no longer matches either)
        sigs[1] = _signGrant(_keyOf(who[1]), grants[1]);
        grants[2].purposes = BTG; // break-glass is never grantable
        sigs[2] = _signGrant(_keyOf(who[2]), grants[2]);
        sigs[3] = _signGrant(_keyOf(who[4]), grants[3]); // someone else's signature
        grants[5].grantee = outsider; // never admitted
        sigs[5] = _signGrant(_keyOf(who[5]), grants[5]);
        grants[6].validUntil = grants[6].validFrom; // empty window
        sigs[6] = _signGrant(_keyOf(who[6]), grants[6]);
        sigs[7] = hex"1234"; // malformed

        assertEq(_send(grants, sigs), 2);
        assertEq(consents.consentCount(who[0], insurer), 1);
        assertEq(consents.consentCount(who[4], insurer), 1);
        for (uint256 i = 1; i < 8; ++i) {
            if (i == 4) continue;
            assertEq(consents.consentCount(who[i], insurer), 0);
            assertFalse(consents.nonceUsed(who[i], grants[i].nonce), "a skipped item keeps its nonce");
        }
    }

    function test_grantBatchBySig_replayedItemIsSkippedOnce() public {
        (IConsentRegistry.Grant[] memory grants, bytes[] memory sigs, address[] memory who) = _batch(1);
        IConsentRegistry.Grant[] memory twice = new IConsentRegistry.Grant[](2);
        bytes[] memory twiceSigs = new bytes[](2);
        (twice[0], twice[1], twiceSigs[0], twiceSigs[1]) = (grants[0], grants[0], sigs[0], sigs[0]);
        assertEq(_send(twice, twiceSigs), 1);
        assertEq(consents.consentCount(who[0], insurer), 1);
        assertEq(_send(grants, sigs), 0, "already relayed");
        vm.expectRevert(); // and grantBySig refuses it too
        vm.prank(clinicARelayer);
        consents.grantBySig(grants[0], sigs[0]);
    }

    function test_grantBatchBySig_skipsAPairThatIsFull() public {
        for (uint256 i = 0; i < 64; ++i) {
            _grantConsent(patientAKey, _grantMsg(patientA, insurer, LABS, PAY), clinicARelayer);
        }
        IConsentRegistry.Grant[] memory grants = new IConsentRegistry.Grant[](1);
        bytes[] memory sigs = new bytes[](1);
        grants[0] = _grantMsg(patientA, insurer, LABS, PAY);
        sigs[0] = _signGrant(patientAKey, grants[0]);
        assertEq(_send(grants, sigs), 0);
        assertFalse(consents.nonceUsed(patientA, grants[0].nonce));
    }

    function test_grantBatchBySig_revertsForNonMember() public {
        (IConsentRegistry.Grant[] memory grants, bytes[] memory sigs,) = _batch(1);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryNotActiveMember.selector, outsider));
        vm.prank(outsider);
        consents.grantBatchBySig(grants, sigs);
    }

    function test_grantBatchBySig_revertsOnBadSizes() public {
        (IConsentRegistry.Grant[] memory grants, bytes[] memory sigs,) = _batch(2);
        bytes[] memory one = new bytes[](1);
        one[0] = sigs[0];
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidBatch.selector, 2, 1));
        _send(grants, one);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidBatch.selector, 0, 0));
        _send(new IConsentRegistry.Grant[](0), new bytes[](0));
        uint256 tooMany = consents.maxGrantBatch() + 1;
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidBatch.selector, tooMany, tooMany)
        );
        _send(new IConsentRegistry.Grant[](tooMany), new bytes[](tooMany));
    }

    function test_maxGrantBatch() public view {
        assertEq(consents.maxGrantBatch(), 100);
    }

    /// @dev Any subset of items corrupted: exactly the others are granted, in order, and the
    /// registry ends as if each valid item had gone through grantBySig alone.
    function testFuzz_grantBatchBySig_grantsExactlyTheValidItems(uint16 corrupt, uint8 size) public {
        uint256 n = bound(size, 1, 12);
        (IConsentRegistry.Grant[] memory grants, bytes[] memory sigs, address[] memory who) = _batch(n);
        uint256 valid;
        for (uint256 i = 0; i < n; ++i) {
            if ((corrupt >> i) & 1 == 1) {
                grants[i].categories = LABS | uint16(1 << Category.MEDICATIONS); // signature no longer covers it
            } else {
                ++valid;
            }
        }
        assertEq(_send(grants, sigs), valid);
        for (uint256 i = 0; i < n; ++i) {
            bool ok = (corrupt >> i) & 1 == 0;
            assertEq(consents.consentCount(who[i], insurer), ok ? 1 : 0);
            assertEq(consents.nonceUsed(who[i], grants[i].nonce), ok);
        }
    }

    function _keyOf(address who) internal returns (uint256 key) {
        for (uint256 i = 0; i < 16; ++i) {
            (address a, uint256 k) = makeAddrAndKey(string(abi.encodePacked("batch.patient.", vm.toString(i))));
            if (a == who) return k;
        }
        revert("unknown patient");
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
