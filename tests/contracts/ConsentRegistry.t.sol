// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {Fixture} from "./utils/Fixture.sol";
import {Eip712} from "./utils/Eip712.sol";
import {MockERC1271Wallet} from "./utils/MockERC1271Wallet.sol";
import {ConsentRegistry} from "../../contracts/ConsentRegistry.sol";
import {IConsentRegistry} from "../../contracts/interfaces/IConsentRegistry.sol";
import {UnorderedNonces} from "../../contracts/utils/UnorderedNonces.sol";
import {ConsentId} from "../../contracts/types/Ids.sol";
import {Category, Purpose} from "../../contracts/types/Codes.sol";

contract ConsentRegistryTest is Fixture {
    uint16 internal constant LABS = uint16(1 << Category.OBSERVATIONS);
    uint16 internal constant MEDS = uint16(1 << Category.MEDICATIONS);
    uint8 internal constant TREAT = uint8(1 << Purpose.TREAT);
    uint8 internal constant PAY = uint8(1 << Purpose.HPAYMT);

    address internal walletOwner;
    uint256 internal walletOwnerKey;
    MockERC1271Wallet internal wallet;

    function setUp() public override {
        super.setUp();
        (walletOwner, walletOwnerKey) = makeAddrAndKey("wallet.owner");
        wallet = new MockERC1271Wallet(walletOwner);
    }

    function _grantA(address grantee, uint16 categories, uint8 purposes) internal returns (ConsentId) {
        return _grantConsent(patientAKey, _grantMsg(patientA, grantee, categories, purposes), clinicARelayer);
    }

    function _expectRevertGrant(IConsentRegistry.Grant memory g, bytes memory sig, address sender, bytes memory err)
        internal
    {
        vm.expectRevert(err);
        vm.prank(sender);
        consents.grantBySig(g, sig);
    }

    function _revoke(uint256 key, address patient, address grantee, uint256 index, address sender) internal {
        IConsentRegistry.Revocation memory r = _revocationMsg(patient, consents.consentIdOf(patient, grantee, index));
        bytes memory sig = _signRevocation(key, r);
        vm.prank(sender);
        consents.revokeBySig(r, grantee, index, sig);
    }

    function _permitted(address grantee, uint8 category, uint8 purpose) internal view returns (bool ok, ConsentId id) {
        return consents.isPermitted(patientA, grantee, category, purpose);
    }

    // ================================================================== constructor / constants

    function test_constructor_setsMemberRegistryAndDomain() public view {
        assertEq(consents.memberRegistry(), address(registry));
        assertEq(consents.maxConsentsPerPair(), 64);
        (, string memory name, string memory version, uint256 chainId, address verifying,,) = consents.eip712Domain();
        assertEq(name, "CareLedger ConsentRegistry");
        assertEq(version, "1");
        assertEq(chainId, block.chainid);
        assertEq(verifying, address(consents));
    }

    // ================================================================== digests

    /// @dev Catches a typo in a typehash or a field left out of the struct hash.
    function test_grantDigest_matchesIndependentEip712Digest() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS | MEDS, TREAT | PAY);
        assertEq(consents.grantDigest(g), Eip712.grantDigest(address(consents), g));
    }

    function test_revocationDigest_matchesIndependentEip712Digest() public {
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, consents.consentIdOf(patientA, insurer, 3));
        assertEq(consents.revocationDigest(r), Eip712.revocationDigest(address(consents), r));
    }

    function test_consentIdOf_matchesIndependentHash() public view {
        assertEq(
            ConsentId.unwrap(consents.consentIdOf(patientA, insurer, 7)), keccak256(abi.encode(patientA, insurer, 7))
        );
    }

    // ================================================================== grantBySig

    function test_grantBySig_storesConsentAndEmits() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS | MEDS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        ConsentId expected = consents.consentIdOf(patientA, insurer, 0);

        vm.expectEmit(true, true, true, true, address(consents));
        emit IConsentRegistry.ConsentGranted(
            expected, patientA, insurer, 0, LABS | MEDS, PAY, g.validFrom, g.validUntil, clinicARelayer
        );
        vm.prank(clinicARelayer);
        ConsentId id = consents.grantBySig(g, sig);

        assertEq(ConsentId.unwrap(id), ConsentId.unwrap(expected));
        assertEq(consents.consentCount(patientA, insurer), 1);
        IConsentRegistry.Consent memory c = consents.getConsent(patientA, insurer, 0);
        assertEq(c.categories, LABS | MEDS);
        assertEq(c.purposes, PAY);
        assertEq(c.validFrom, g.validFrom);
        assertEq(c.validUntil, g.validUntil);
        assertFalse(c.revoked);
        assertTrue(consents.nonceUsed(patientA, g.nonce));
    }

    function test_grantBySig_relayedByAnyActiveMember() public {
        address[5] memory relayers = [clinicB, insurer, research, auditor, clinicBRelayer];
        for (uint256 i = 0; i < relayers.length; ++i) {
            _grantConsent(patientAKey, _grantMsg(patientA, insurer, LABS, PAY), relayers[i]);
        }
        assertEq(consents.consentCount(patientA, insurer), 5);
    }

    function test_grantBySig_consentsAccumulate() public {
        ConsentId first = _grantA(insurer, LABS, PAY);
        ConsentId second = _grantA(insurer, MEDS, PAY);
        assertEq(consents.consentCount(patientA, insurer), 2);
        assertEq(ConsentId.unwrap(second), ConsentId.unwrap(consents.consentIdOf(patientA, insurer, 1)));
        assertTrue(ConsentId.unwrap(first) != ConsentId.unwrap(second));
        assertEq(consents.getConsent(patientA, insurer, 0).categories, LABS);
        assertEq(consents.getConsent(patientA, insurer, 1).categories, MEDS);
    }

    function test_grantBySig_acceptsSuspendedGrantee() public {
        // The grantee must have been admitted; its suspension does not stop a patient's consent.
        _suspend(research);
        _grantA(research, LABS, uint8(1 << Purpose.HRESCH));
        assertEq(consents.consentCount(patientA, research), 1);
    }

    function test_grantBySig_acceptsFutureWindow() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        g.validFrom = uint40(block.timestamp + 30 days);
        g.validUntil = uint40(block.timestamp + 60 days);
        _grantConsent(patientAKey, g, clinicA);
        assertEq(consents.consentCount(patientA, insurer), 1);
    }

    function test_grantBySig_acceptsEveryGrantableScope() public {
        _grantA(insurer, Category.ALL, Purpose.GRANTABLE);
        assertEq(consents.getConsent(patientA, insurer, 0).purposes, 0x7f);
        assertEq(consents.getConsent(patientA, insurer, 0).categories, 0x7ff);
    }

    function test_grantBySig_acceptsAtDeadline() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        g.deadline = block.timestamp;
        _grantConsent(patientAKey, g, clinicA);
    }

    function test_grantBySig_revertsForNonMember() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, outsider, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryNotActiveMember.selector, outsider)
        );
    }

    function test_grantBySig_revertsForPatientItself() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, patientA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryNotActiveMember.selector, patientA)
        );
    }

    function test_grantBySig_revertsForCouncilSeat() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, seat1, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryNotActiveMember.selector, seat1)
        );
    }

    function test_grantBySig_revertsForSigningKey() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g,
            sig,
            insurerSigner,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryNotActiveMember.selector, insurerSigner)
        );
    }

    function test_grantBySig_revertsForSuspendedMembersRelayer() public {
        _suspend(clinicA);
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g,
            sig,
            clinicARelayer,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryNotActiveMember.selector, clinicARelayer)
        );
    }

    function test_grantBySig_revertsOnExpiredDeadline() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        vm.warp(g.deadline + 1);
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryExpiredSignature.selector, g.deadline)
        );
    }

    function test_grantBySig_revertsOnEmptyCategories() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, 0, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidScope.selector, 0, PAY)
        );
    }

    function test_grantBySig_revertsOnUnknownCategoryBit() public {
        uint16 cats = LABS | uint16(1 << Category.COUNT);
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, cats, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidScope.selector, cats, PAY)
        );
    }

    function test_grantBySig_revertsOnEmptyPurposes() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, 0);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidScope.selector, LABS, 0)
        );
    }

    function test_grantBySig_revertsOnBreakGlassPurpose() public {
        uint8 purposes = TREAT | uint8(1 << Purpose.BTG);
        IConsentRegistry.Grant memory g = _grantMsg(patientA, clinicB, LABS, purposes);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidScope.selector, LABS, purposes)
        );
    }

    function test_grantBySig_revertsOnEmptyWindow() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        g.validUntil = g.validFrom;
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidWindow.selector, g.validFrom, g.validUntil)
        );
    }

    function test_grantBySig_revertsOnInvertedWindow() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        g.validFrom = uint40(block.timestamp + 10 days);
        g.validUntil = uint40(block.timestamp + 5 days);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidWindow.selector, g.validFrom, g.validUntil)
        );
    }

    function test_grantBySig_revertsOnWindowAlreadyOver() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        g.validFrom = uint40(block.timestamp - 10 days);
        g.validUntil = uint40(block.timestamp);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidWindow.selector, g.validFrom, g.validUntil)
        );
    }

    function test_grantBySig_revertsOnNeverAdmittedGrantee() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, outsider, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnknownGrantee.selector, outsider)
        );
    }

    function test_grantBySig_revertsOnOperationalKeyAsGrantee() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurerSigner, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnknownGrantee.selector, insurerSigner)
        );
    }

    function test_grantBySig_revertsOnZeroGrantee() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, address(0), LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnknownGrantee.selector, address(0))
        );
    }

    function test_grantBySig_revertsForZeroPatient() public {
        // ecrecover's zero address for a bad signature must never pass for a patient.
        IConsentRegistry.Grant memory g = _grantMsg(address(0), insurer, LABS, PAY);
        bytes memory junk = abi.encodePacked(bytes32(uint256(1)), bytes32(uint256(2)), uint8(29));
        _expectRevertGrant(
            g,
            junk,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, address(0))
        );
        _expectRevertGrant(
            g,
            _signGrant(patientAKey, g),
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, address(0))
        );
    }

    function test_grantBySig_revertsOnSomeoneElsesSignature() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientBKey, g);
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patientA)
        );
    }

    function test_grantBySig_revertsOnSignatureOverAnotherGrant() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        g.categories = Category.ALL; // the relayer widens the scope
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patientA)
        );
    }

    function test_grantBySig_revertsOnMalformedSignature() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        bytes memory truncated = new bytes(64);
        for (uint256 i = 0; i < 64; ++i) {
            truncated[i] = sig[i];
        }
        _expectRevertGrant(
            g,
            truncated,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patientA)
        );
        _expectRevertGrant(
            g, "", clinicA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patientA)
        );
    }

    function test_grantBySig_revertsOnHighSSignature() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(patientAKey, consents.grantDigest(g));
        // The malleable twin (r, n - s, v ^ 1) recovers the same key; OpenZeppelin's ECDSA refuses it.
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        bytes memory twin = abi.encodePacked(r, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        _expectRevertGrant(
            g,
            twin,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patientA)
        );
    }

    function test_grantBySig_revertsOnSignatureForAnotherChain() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        vm.chainId(block.chainid + 1);
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patientA)
        );
    }

    function test_grantBySig_revertsOnSignatureForAnotherDeployment() public {
        ConsentRegistry other = new ConsentRegistry(registry);
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _sign(patientAKey, other.grantDigest(g));
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patientA)
        );
    }

    function test_grantBySig_revertsOnReplayedMessage() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        vm.prank(clinicA);
        consents.grantBySig(g, sig);
        // Another member's gateway relays the very same message again.
        _expectRevertGrant(
            g, sig, clinicB, abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, g.nonce)
        );
        assertEq(consents.consentCount(patientA, insurer), 1);
    }

    function test_grantBySig_revertsOnNonceReusedInAnotherGrant() public {
        IConsentRegistry.Grant memory first = _grantMsg(patientA, insurer, LABS, PAY);
        _grantConsent(patientAKey, first, clinicA);
        IConsentRegistry.Grant memory second = _grantMsg(patientA, research, LABS, uint8(1 << Purpose.HRESCH));
        second.nonce = first.nonce;
        bytes memory sig = _signGrant(patientAKey, second);
        _expectRevertGrant(
            second,
            sig,
            clinicA,
            abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, first.nonce)
        );
    }

    function test_grantBySig_revertsOnNonceUsedByRevocation() public {
        _grantA(insurer, LABS, PAY);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, consents.consentIdOf(patientA, insurer, 0));
        bytes memory rsig = _signRevocation(patientAKey, r);
        vm.prank(clinicA);
        consents.revokeBySig(r, insurer, 0, rsig);

        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        g.nonce = r.nonce;
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, r.nonce)
        );
    }

    function test_grantBySig_unorderedNoncesAllowAnyOrder() public {
        IConsentRegistry.Grant memory high = _grantMsg(patientA, insurer, LABS, PAY);
        high.nonce = 1000;
        IConsentRegistry.Grant memory low = _grantMsg(patientA, insurer, MEDS, PAY);
        low.nonce = 3;
        _grantConsent(patientAKey, high, clinicA);
        _grantConsent(patientAKey, low, clinicA);
        assertEq(consents.consentCount(patientA, insurer), 2);
    }

    function test_grantBySig_revertsOnTooManyConsents() public {
        uint256 max = consents.maxConsentsPerPair();
        for (uint256 i = 0; i < max; ++i) {
            _grantA(insurer, LABS, PAY);
        }
        assertEq(consents.consentCount(patientA, insurer), max);
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryTooManyConsents.selector, patientA, insurer)
        );
        // The refused grant did not burn its nonce; other pairs are unaffected.
        assertFalse(consents.nonceUsed(patientA, g.nonce));
        _grantA(research, LABS, uint8(1 << Purpose.HRESCH));
    }

    function test_grantBySig_worksForErc1271Wallet() public {
        IConsentRegistry.Grant memory g = _grantMsg(address(wallet), insurer, LABS, PAY);
        ConsentId id = _grantConsent(walletOwnerKey, g, clinicA);
        assertEq(ConsentId.unwrap(id), ConsentId.unwrap(consents.consentIdOf(address(wallet), insurer, 0)));
        (bool ok,) = consents.isPermitted(address(wallet), insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertTrue(ok);
    }

    function test_grantBySig_revertsOnWrongErc1271Answer() public {
        wallet.setMode(MockERC1271Wallet.Mode.WRONG_MAGIC);
        IConsentRegistry.Grant memory g = _grantMsg(address(wallet), insurer, LABS, PAY);
        bytes memory sig = _signGrant(walletOwnerKey, g);
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, address(wallet))
        );
    }

    function test_grantBySig_revertsWhenErc1271WalletReverts() public {
        wallet.setMode(MockERC1271Wallet.Mode.REVERTS);
        IConsentRegistry.Grant memory g = _grantMsg(address(wallet), insurer, LABS, PAY);
        bytes memory sig = _signGrant(walletOwnerKey, g);
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, address(wallet))
        );
    }

    function test_grantBySig_revertsOnStrangersSignatureForErc1271Wallet() public {
        IConsentRegistry.Grant memory g = _grantMsg(address(wallet), insurer, LABS, PAY);
        bytes memory sig = _signGrant(patientBKey, g);
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, address(wallet))
        );
    }

    function test_grantBySig_erc1271WalletCannotReplay() public {
        // Even a wallet that approves anything cannot have one message used twice.
        wallet.setMode(MockERC1271Wallet.Mode.APPROVES_ANYTHING);
        IConsentRegistry.Grant memory g = _grantMsg(address(wallet), insurer, LABS, PAY);
        vm.prank(clinicA);
        consents.grantBySig(g, hex"00");
        _expectRevertGrant(
            g,
            hex"00",
            clinicA,
            abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, address(wallet), g.nonce)
        );
    }

    // ================================================================== revokeBySig

    function test_revokeBySig_revokesAndEmits() public {
        ConsentId id = _grantA(insurer, LABS, PAY);
        (bool ok,) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertTrue(ok);

        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        bytes memory sig = _signRevocation(patientAKey, r);
        vm.expectEmit(true, true, true, true, address(consents));
        emit IConsentRegistry.ConsentRevoked(id, patientA, insurer, clinicARelayer);
        vm.prank(clinicARelayer);
        consents.revokeBySig(r, insurer, 0, sig);

        assertTrue(consents.getConsent(patientA, insurer, 0).revoked);
        assertTrue(consents.nonceUsed(patientA, r.nonce));
        // Effective in the same block.
        ConsentId returned;
        (ok, returned) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertFalse(ok);
        assertEq(ConsentId.unwrap(returned), bytes32(0));
        assertEq(consents.consentCount(patientA, insurer), 1);
    }

    function test_revokeBySig_relayedByAnotherCustodian() public {
        // A custodian cannot sit on a revocation: any active member relays it.
        _grantA(clinicB, LABS, TREAT);
        _revoke(patientAKey, patientA, clinicB, 0, auditor);
        assertTrue(consents.getConsent(patientA, clinicB, 0).revoked);
    }

    function test_revokeBySig_revokesForSuspendedGrantee() public {
        _grantA(insurer, LABS, PAY);
        _suspend(insurer);
        _revoke(patientAKey, patientA, insurer, 0, clinicA);
        assertTrue(consents.getConsent(patientA, insurer, 0).revoked);
    }

    function test_revokeBySig_revokesExpiredConsent() public {
        _grantA(insurer, LABS, PAY);
        vm.warp(block.timestamp + 400 days);
        _revoke(patientAKey, patientA, insurer, 0, clinicA);
        assertTrue(consents.getConsent(patientA, insurer, 0).revoked);
    }

    function test_revokeBySig_leavesOtherConsentsOfThePair() public {
        _grantA(insurer, LABS, PAY);
        ConsentId second = _grantA(insurer, LABS, PAY);
        _revoke(patientAKey, patientA, insurer, 0, clinicA);
        (bool ok, ConsentId id) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertTrue(ok);
        assertEq(ConsentId.unwrap(id), ConsentId.unwrap(second));
    }

    function test_revokeBySig_revertsForNonMember() public {
        ConsentId id = _grantA(insurer, LABS, PAY);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        bytes memory sig = _signRevocation(patientAKey, r);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryNotActiveMember.selector, patientA));
        vm.prank(patientA);
        consents.revokeBySig(r, insurer, 0, sig);
    }

    function test_revokeBySig_revertsForSuspendedMember() public {
        ConsentId id = _grantA(insurer, LABS, PAY);
        _suspend(clinicB);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        bytes memory sig = _signRevocation(patientAKey, r);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryNotActiveMember.selector, clinicB));
        vm.prank(clinicB);
        consents.revokeBySig(r, insurer, 0, sig);
    }

    function test_revokeBySig_revertsOnExpiredDeadline() public {
        ConsentId id = _grantA(insurer, LABS, PAY);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        bytes memory sig = _signRevocation(patientAKey, r);
        vm.warp(r.deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryExpiredSignature.selector, r.deadline));
        vm.prank(clinicA);
        consents.revokeBySig(r, insurer, 0, sig);
    }

    function test_revokeBySig_revertsOnIndexBeyondMaximum() public {
        ConsentId id = consents.consentIdOf(patientA, insurer, 64);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        bytes memory sig = _signRevocation(patientAKey, r);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnknownConsent.selector, id));
        vm.prank(clinicA);
        consents.revokeBySig(r, insurer, 64, sig);
    }

    function test_revokeBySig_revertsOnWrongIndex() public {
        ConsentId id = _grantA(insurer, LABS, PAY);
        _grantA(insurer, MEDS, PAY);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        bytes memory sig = _signRevocation(patientAKey, r);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnknownConsent.selector, id));
        vm.prank(clinicA);
        consents.revokeBySig(r, insurer, 1, sig);
    }

    function test_revokeBySig_revertsOnWrongGrantee() public {
        ConsentId id = _grantA(insurer, LABS, PAY);
        _grantA(research, LABS, uint8(1 << Purpose.HRESCH));
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        bytes memory sig = _signRevocation(patientAKey, r);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnknownConsent.selector, id));
        vm.prank(clinicA);
        consents.revokeBySig(r, research, 0, sig);
    }

    function test_revokeBySig_revertsOnNeverGrantedConsent() public {
        ConsentId id = consents.consentIdOf(patientA, insurer, 0);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        bytes memory sig = _signRevocation(patientAKey, r);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnknownConsent.selector, id));
        vm.prank(clinicA);
        consents.revokeBySig(r, insurer, 0, sig);
    }

    function test_revokeBySig_revertsOnAnotherPatientsConsent() public {
        // patientB cannot revoke patientA's consent by naming it under its own address.
        ConsentId id = _grantA(insurer, LABS, PAY);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientB, id);
        bytes memory sig = _signRevocation(patientBKey, r);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnknownConsent.selector, id));
        vm.prank(clinicA);
        consents.revokeBySig(r, insurer, 0, sig);
    }

    function test_revokeBySig_revertsOnAlreadyRevoked() public {
        ConsentId id = _grantA(insurer, LABS, PAY);
        _revoke(patientAKey, patientA, insurer, 0, clinicA);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        bytes memory sig = _signRevocation(patientAKey, r);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryAlreadyRevoked.selector, id));
        vm.prank(clinicA);
        consents.revokeBySig(r, insurer, 0, sig);
    }

    function test_revokeBySig_revertsOnSomeoneElsesSignature() public {
        ConsentId id = _grantA(insurer, LABS, PAY);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        // Neither the grantee nor the custodian can revoke for the patient.
        bytes memory sig = _signRevocation(insurerSignerKey, r);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patientA));
        vm.prank(clinicA);
        consents.revokeBySig(r, insurer, 0, sig);
    }

    function test_revokeBySig_revertsOnGrantSignatureReusedAsRevocation() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        bytes memory gsig = _signGrant(patientAKey, g);
        vm.prank(clinicA);
        ConsentId id = consents.grantBySig(g, gsig);
        IConsentRegistry.Revocation memory r = _revocationMsg(patientA, id);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patientA));
        vm.prank(clinicA);
        consents.revokeBySig(r, insurer, 0, gsig);
    }

    function test_revokeBySig_revertsOnReplayedNonce() public {
        _grantA(insurer, LABS, PAY);
        ConsentId second = _grantA(insurer, MEDS, PAY);
        IConsentRegistry.Revocation memory r0 = _revocationMsg(patientA, consents.consentIdOf(patientA, insurer, 0));
        bytes memory sig0 = _signRevocation(patientAKey, r0);
        vm.prank(clinicA);
        consents.revokeBySig(r0, insurer, 0, sig0);

        IConsentRegistry.Revocation memory r1 = _revocationMsg(patientA, second);
        r1.nonce = r0.nonce;
        bytes memory sig1 = _signRevocation(patientAKey, r1);
        vm.expectRevert(abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, r0.nonce));
        vm.prank(clinicA);
        consents.revokeBySig(r1, insurer, 1, sig1);
    }

    function test_revokeBySig_worksForErc1271Wallet() public {
        IConsentRegistry.Grant memory g = _grantMsg(address(wallet), insurer, LABS, PAY);
        _grantConsent(walletOwnerKey, g, clinicA);
        _revoke(walletOwnerKey, address(wallet), insurer, 0, clinicB);
        assertTrue(consents.getConsent(address(wallet), insurer, 0).revoked);
    }

    function test_revokeBySig_revertsOnWrongErc1271Answer() public {
        IConsentRegistry.Grant memory g = _grantMsg(address(wallet), insurer, LABS, PAY);
        ConsentId id = _grantConsent(walletOwnerKey, g, clinicA);
        wallet.setMode(MockERC1271Wallet.Mode.WRONG_MAGIC);
        IConsentRegistry.Revocation memory r = _revocationMsg(address(wallet), id);
        bytes memory sig = _signRevocation(walletOwnerKey, r);
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, address(wallet))
        );
        vm.prank(clinicA);
        consents.revokeBySig(r, insurer, 0, sig);
    }

    // ================================================================== isPermitted

    function test_isPermitted_followsTheValidityWindow() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        g.validFrom = uint40(block.timestamp + 1 days);
        g.validUntil = uint40(block.timestamp + 2 days);
        ConsentId id = _grantConsent(patientAKey, g, clinicA);

        vm.warp(uint256(g.validFrom) - 1);
        (bool ok,) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertFalse(ok, "before validFrom");

        vm.warp(g.validFrom);
        ConsentId returned;
        (ok, returned) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertTrue(ok, "at validFrom");
        assertEq(ConsentId.unwrap(returned), ConsentId.unwrap(id));

        vm.warp(uint256(g.validUntil) - 1);
        (ok,) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertTrue(ok, "last second");

        vm.warp(g.validUntil);
        (ok, returned) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertFalse(ok, "at validUntil");
        assertEq(ConsentId.unwrap(returned), bytes32(0));
    }

    function test_isPermitted_falseAfterRevocation() public {
        _grantA(insurer, LABS, PAY);
        _revoke(patientAKey, patientA, insurer, 0, clinicB);
        (bool ok, ConsentId id) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertFalse(ok);
        assertEq(ConsentId.unwrap(id), bytes32(0));
    }

    function test_isPermitted_falseForAnotherGrantee() public {
        _grantA(insurer, LABS, PAY);
        (bool ok,) = _permitted(research, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertFalse(ok);
        (ok,) = consents.isPermitted(patientB, insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertFalse(ok, "another patient");
    }

    function test_isPermitted_falseForAnotherCategory() public {
        _grantA(insurer, LABS, PAY);
        (bool ok,) = _permitted(insurer, Category.MEDICATIONS, Purpose.HPAYMT);
        assertFalse(ok);
    }

    function test_isPermitted_falseForAnotherPurpose() public {
        _grantA(insurer, LABS, PAY);
        (bool ok,) = _permitted(insurer, Category.OBSERVATIONS, Purpose.TREAT);
        assertFalse(ok);
    }

    function test_isPermitted_neverPermitsBreakGlass() public {
        _grantA(clinicB, Category.ALL, Purpose.GRANTABLE);
        (bool ok,) = _permitted(clinicB, Category.CONDITIONS, Purpose.BTG);
        assertFalse(ok);
        (ok,) = _permitted(clinicB, Category.CONDITIONS, Purpose.ETREAT);
        assertTrue(ok);
    }

    function test_isPermitted_returnsTheFirstLiveConsent() public {
        _grantA(insurer, LABS, PAY); // 0: LABS, revoked below
        _grantA(insurer, MEDS, PAY); // 1: other category
        IConsentRegistry.Grant memory later = _grantMsg(patientA, insurer, LABS, PAY);
        later.validFrom = uint40(block.timestamp + 10 days); // 2: not yet valid
        _grantConsent(patientAKey, later, clinicA);
        ConsentId fourth = _grantA(insurer, LABS | MEDS, PAY); // 3: the one that permits LABS now
        ConsentId fifth = _grantA(insurer, LABS, PAY); // 4: also permits, but later in order
        _revoke(patientAKey, patientA, insurer, 0, clinicA);

        (bool ok, ConsentId id) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertTrue(ok);
        assertEq(ConsentId.unwrap(id), ConsentId.unwrap(fourth));
        (ok, id) = _permitted(insurer, Category.MEDICATIONS, Purpose.HPAYMT);
        assertEq(ConsentId.unwrap(id), ConsentId.unwrap(consents.consentIdOf(patientA, insurer, 1)));

        _revoke(patientAKey, patientA, insurer, 3, clinicA);
        (ok, id) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertEq(ConsentId.unwrap(id), ConsentId.unwrap(fifth));

        vm.warp(later.validFrom);
        (ok, id) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertEq(ConsentId.unwrap(id), ConsentId.unwrap(consents.consentIdOf(patientA, insurer, 2)));
    }

    function test_isPermitted_seesConsentAtTheLastIndex() public {
        for (uint256 i = 0; i < 63; ++i) {
            _grantA(insurer, MEDS, PAY);
        }
        ConsentId last = _grantA(insurer, LABS, PAY);
        (bool ok, ConsentId id) = _permitted(insurer, Category.OBSERVATIONS, Purpose.HPAYMT);
        assertTrue(ok);
        assertEq(ConsentId.unwrap(id), ConsentId.unwrap(last));
    }

    function test_isPermitted_revertsOnUnknownCategory() public {
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidCode.selector, Category.COUNT, Purpose.TREAT)
        );
        consents.isPermitted(patientA, insurer, Category.COUNT, Purpose.TREAT);
    }

    function test_isPermitted_revertsOnUnknownPurpose() public {
        vm.expectRevert(
            abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidCode.selector, Category.CLAIMS, Purpose.COUNT)
        );
        consents.isPermitted(patientA, insurer, Category.CLAIMS, Purpose.COUNT);
    }

    function test_getConsent_zeroForUnknownConsent() public view {
        IConsentRegistry.Consent memory c = consents.getConsent(patientA, insurer, 0);
        assertEq(c.categories, 0);
        assertEq(c.validUntil, 0);
        assertEq(consents.consentCount(patientA, insurer), 0);
    }

    // ================================================================== nonces

    function test_invalidateNonces_cancelsUnusedNoncesAndEmits() public {
        uint256 mask = (1 << 3) | (1 << 200);
        vm.expectEmit(true, true, false, true, address(consents));
        emit UnorderedNonces.NoncesInvalidated(patientA, 2, mask);
        vm.prank(patientA);
        consents.invalidateNonces(2, mask);

        assertEq(consents.nonceBitmap(patientA, 2), mask);
        assertTrue(consents.nonceUsed(patientA, 2 * 256 + 3));
        assertTrue(consents.nonceUsed(patientA, 2 * 256 + 200));
        assertFalse(consents.nonceUsed(patientA, 2 * 256 + 4));
        assertFalse(consents.nonceUsed(patientB, 2 * 256 + 3), "only the caller's nonces");

        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        g.nonce = 2 * 256 + 3;
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, clinicA, abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, g.nonce)
        );
    }

    function test_invalidateNonces_keepsUsedNoncesUsed() public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        g.nonce = 5;
        _grantConsent(patientAKey, g, clinicA);
        vm.prank(patientA);
        consents.invalidateNonces(0, 1 << 5); // cancelling an already used nonce must not free it
        assertTrue(consents.nonceUsed(patientA, 5));
        bytes memory sig = _signGrant(patientAKey, g);
        _expectRevertGrant(
            g, sig, clinicB, abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, 5)
        );
    }

    function test_invalidateNonces_letsWalletCancelAStuckGrant() public {
        IConsentRegistry.Grant memory g = _grantMsg(address(wallet), insurer, LABS, PAY);
        bytes memory sig = _signGrant(walletOwnerKey, g);
        vm.prank(walletOwner);
        wallet.execute(
            address(consents), abi.encodeCall(UnorderedNonces.invalidateNonces, (g.nonce >> 8, 1 << (g.nonce & 0xff)))
        );
        _expectRevertGrant(
            g,
            sig,
            clinicA,
            abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, address(wallet), g.nonce)
        );
    }

    function test_nonceUsed_coversTheWholeNonceSpace() public {
        uint256[4] memory nonces = [uint256(0), 255, 256, type(uint256).max];
        for (uint256 i = 0; i < nonces.length; ++i) {
            IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
            g.nonce = nonces[i];
            _grantConsent(patientAKey, g, clinicA);
            assertTrue(consents.nonceUsed(patientA, nonces[i]));
        }
        assertEq(consents.nonceBitmap(patientA, 0), (1 << 0) | (1 << 255));
        assertEq(consents.nonceBitmap(patientA, 1), 1);
        assertEq(consents.nonceBitmap(patientA, type(uint256).max >> 8), 1 << 255);
        assertFalse(consents.nonceUsed(patientA, 1));
    }

    // ================================================================== fuzz

    /// @dev Random keys and fields: the grant succeeds exactly when every field is valid, and
    /// otherwise fails with the first check's error, in the contract's documented order.
    function testFuzz_grantBySig_acceptsIffFieldsValid(uint256 privateKey, IConsentRegistry.Grant memory g, uint8 shape)
        public
    {
        privateKey = bound(privateKey, 1, SECP256K1_N - 1);
        g.patient = vm.addr(privateKey);
        vm.assume(g.patient.code.length == 0);
        // Steer half the runs towards valid values (and the others field by field), so that
        // both outcomes and every error are well covered.
        if (shape & 0x08 == 0) shape |= 0xf0;
        if (shape & 0x10 != 0) g.categories &= Category.ALL;
        if (shape & 0x20 != 0) g.purposes &= Purpose.GRANTABLE;
        if (shape & 0x40 != 0) {
            g.validFrom = uint40(bound(g.validFrom, block.timestamp - 365 days, block.timestamp + 365 days));
            g.validUntil = uint40(bound(g.validUntil, block.timestamp - 1 days, block.timestamp + 730 days));
        }
        if (shape & 0x80 != 0) g.deadline = bound(g.deadline, block.timestamp - 1 days, block.timestamp + 1 days);
        address[4] memory grantees = [insurer, research, outsider, clinicARelayer];
        g.grantee = grantees[shape % 4];
        bytes memory sig = _sign(privateKey, Eip712.grantDigest(address(consents), g));

        bytes memory err = _expectedGrantError(g);
        if (err.length != 0) {
            vm.expectRevert(err);
            vm.prank(clinicB);
            consents.grantBySig(g, sig);
            assertEq(consents.consentCount(g.patient, g.grantee), 0);
            assertFalse(consents.nonceUsed(g.patient, g.nonce));
        } else {
            vm.prank(clinicB);
            ConsentId id = consents.grantBySig(g, sig);
            assertEq(ConsentId.unwrap(id), keccak256(abi.encode(g.patient, g.grantee, uint256(0))));
            assertTrue(consents.nonceUsed(g.patient, g.nonce));
            IConsentRegistry.Consent memory c = consents.getConsent(g.patient, g.grantee, 0);
            assertEq(c.categories, g.categories);
            assertEq(c.purposes, g.purposes);
            assertEq(c.validFrom, g.validFrom);
            assertEq(c.validUntil, g.validUntil);
            assertFalse(c.revoked);
        }
    }

    /// @dev The model of grantBySig's checks, for a correctly signed grant relayed by an active member.
    function _expectedGrantError(IConsentRegistry.Grant memory g) internal view returns (bytes memory) {
        if (block.timestamp > g.deadline) {
            return abi.encodeWithSelector(IConsentRegistry.ConsentRegistryExpiredSignature.selector, g.deadline);
        }
        if (
            g.categories == 0 || g.categories & ~Category.ALL != 0 || g.purposes == 0
                || g.purposes & ~Purpose.GRANTABLE != 0
        ) {
            return abi.encodeWithSelector(
                IConsentRegistry.ConsentRegistryInvalidScope.selector, g.categories, g.purposes
            );
        }
        if (g.validUntil <= g.validFrom || g.validUntil <= block.timestamp) {
            return
                abi.encodeWithSelector(
                    IConsentRegistry.ConsentRegistryInvalidWindow.selector, g.validFrom, g.validUntil
                );
        }
        if (g.grantee == outsider || g.grantee == clinicARelayer) {
            return abi.encodeWithSelector(IConsentRegistry.ConsentRegistryUnknownGrantee.selector, g.grantee);
        }
        return "";
    }

    /// @dev A valid grant whose signed message differs in any one field from the submitted one is refused.
    function testFuzz_grantBySig_rejectsAnyAlteredField(uint256 privateKey, uint8 field, uint256 salt) public {
        privateKey = bound(privateKey, 1, SECP256K1_N - 1);
        address patient = vm.addr(privateKey);
        vm.assume(patient.code.length == 0);
        IConsentRegistry.Grant memory signed = _grantMsg(patient, insurer, LABS, PAY);
        signed.nonce = salt;
        bytes memory sig = _sign(privateKey, consents.grantDigest(signed));

        IConsentRegistry.Grant memory sent = _copy(signed);
        field = uint8(bound(field, 0, 7));
        if (field == 0) {
            sent.patient = vm.addr(bound(uint256(keccak256(abi.encode(salt))), 1, SECP256K1_N - 1));
            vm.assume(sent.patient != patient);
        } else if (field == 1) {
            sent.grantee = research;
        } else if (field == 2) {
            sent.categories = uint16(bound(salt, 1, Category.ALL));
            vm.assume(sent.categories != signed.categories);
        } else if (field == 3) {
            sent.purposes = uint8(bound(salt, 1, Purpose.GRANTABLE));
            vm.assume(sent.purposes != signed.purposes);
        } else if (field == 4) {
            sent.validFrom = uint40(bound(salt, 0, signed.validUntil - 1));
            vm.assume(sent.validFrom != signed.validFrom);
        } else if (field == 5) {
            sent.validUntil = uint40(bound(salt, block.timestamp + 1, type(uint40).max));
            vm.assume(sent.validUntil != signed.validUntil);
        } else if (field == 6) {
            sent.nonce = salt ^ (uint256(1) << (salt % 256));
        } else {
            sent.deadline = bound(salt, block.timestamp, type(uint256).max);
            vm.assume(sent.deadline != signed.deadline);
        }
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, sent.patient));
        vm.prank(clinicA);
        consents.grantBySig(sent, sig);
    }

    function testFuzz_revokeBySig_rejectsAnyAlteredField(uint8 field, uint256 salt) public {
        _grantA(insurer, LABS, PAY);
        _grantA(insurer, MEDS, PAY);
        IConsentRegistry.Revocation memory signed = _revocationMsg(patientA, consents.consentIdOf(patientA, insurer, 0));
        bytes memory sig = _signRevocation(patientAKey, signed);
        IConsentRegistry.Revocation memory sent = IConsentRegistry.Revocation({
            patient: signed.patient, consentId: signed.consentId, nonce: signed.nonce, deadline: signed.deadline
        });
        uint256 index = 0;
        field = uint8(bound(field, 0, 2));
        if (field == 0) {
            sent.consentId = consents.consentIdOf(patientA, insurer, 1);
            index = 1;
        } else if (field == 1) {
            sent.nonce = salt;
            vm.assume(sent.nonce != signed.nonce);
        } else {
            sent.deadline = bound(salt, block.timestamp, type(uint256).max);
            vm.assume(sent.deadline != signed.deadline);
        }
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, patientA));
        vm.prank(clinicA);
        consents.revokeBySig(sent, insurer, index, sig);
    }

    /// @dev isPermitted is true exactly inside [validFrom, validUntil) until revoked, for the granted codes only.
    function testFuzz_isPermitted_matchesConsentModel(
        uint40 fromOffset,
        uint40 length,
        uint40 at,
        uint8 category,
        uint8 purpose,
        bool revoke
    ) public {
        uint40 validFrom = uint40(block.timestamp + bound(fromOffset, 0, 30 days));
        uint40 validUntil = uint40(validFrom + bound(length, 1, 30 days));
        category = uint8(bound(category, 0, Category.COUNT - 1));
        purpose = uint8(bound(purpose, 0, Purpose.COUNT - 1));
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS | MEDS, TREAT | PAY);
        g.validFrom = validFrom;
        g.validUntil = validUntil;
        ConsentId id = _grantConsent(patientAKey, g, clinicA);
        if (revoke) _revoke(patientAKey, patientA, insurer, 0, clinicA);

        uint256 now_ = bound(at, block.timestamp, uint256(validUntil) + 10 days);
        vm.warp(now_);
        bool expected = !revoke && validFrom <= now_ && now_ < validUntil
            && (category == Category.OBSERVATIONS || category == Category.MEDICATIONS)
            && (purpose == Purpose.TREAT || purpose == Purpose.HPAYMT);
        (bool ok, ConsentId returned) = consents.isPermitted(patientA, insurer, category, purpose);
        assertEq(ok, expected);
        assertEq(ConsentId.unwrap(returned), expected ? ConsentId.unwrap(id) : bytes32(0));
    }

    /// @dev Every nonce is usable exactly once, whatever its word and bit.
    function testFuzz_grantBySig_nonceUsableOnce(uint256 nonce) public {
        IConsentRegistry.Grant memory g = _grantMsg(patientA, insurer, LABS, PAY);
        g.nonce = nonce;
        bytes memory sig = _signGrant(patientAKey, g);
        assertFalse(consents.nonceUsed(patientA, nonce));
        vm.prank(clinicA);
        consents.grantBySig(g, sig);
        assertTrue(consents.nonceUsed(patientA, nonce));
        assertEq(consents.nonceBitmap(patientA, nonce >> 8), uint256(1) << (nonce & 0xff));
        vm.expectRevert(abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, nonce));
        vm.prank(clinicB);
        consents.grantBySig(g, sig);
    }

    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    function _copy(IConsentRegistry.Grant memory g) internal pure returns (IConsentRegistry.Grant memory) {
        return IConsentRegistry.Grant({
            patient: g.patient,
            grantee: g.grantee,
            categories: g.categories,
            purposes: g.purposes,
            validFrom: g.validFrom,
            validUntil: g.validUntil,
            nonce: g.nonce,
            deadline: g.deadline
        });
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
