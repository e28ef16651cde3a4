// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {console} from "forge-std/Test.sol";
import {Fixture} from "../utils/Fixture.sol";
import {MockERC1271Wallet} from "../utils/MockERC1271Wallet.sol";
import {CareLedgerHandler} from "./handlers/CareLedgerHandler.sol";

/// @title Invariants across consents, records and the access log
contract CareLedgerInvariantTest is Fixture {
    CareLedgerHandler internal handler;

    function setUp() public override {
        super.setUp();
        (address walletOwner, uint256 walletOwnerKey) = makeAddrAndKey("wallet.owner");
        MockERC1271Wallet wallet = new MockERC1271Wallet(walletOwner);
        handler = new CareLedgerHandler(
            registry,
            consents,
            records,
            accessLog,
            CareLedgerHandler.Actors({
                seatA: seat1,
                seatB: seat2,
                clinicA: clinicA,
                clinicARelayer: clinicARelayer,
                clinicB: clinicB,
                clinicBRelayer: clinicBRelayer,
                insurer: insurer,
                insurerSigner: insurerSigner,
                research: research,
                auditor: auditor,
                outsider: outsider
            }),
            [patientA, patientA2, patientB, address(wallet)],
            [patientAKey, patientA2Key, patientBKey, walletOwnerKey]
        );

        bytes4[] memory selectors = new bytes4[](10);
        selectors[0] = CareLedgerHandler.grant.selector;
        selectors[1] = CareLedgerHandler.revoke.selector;
        selectors[2] = CareLedgerHandler.enroll.selector;
        selectors[3] = CareLedgerHandler.anchor.selector;
        selectors[4] = CareLedgerHandler.erase.selector;
        selectors[5] = CareLedgerHandler.logAccess.selector;
        selectors[6] = CareLedgerHandler.replay.selector;
        selectors[7] = CareLedgerHandler.toggleSuspension.selector;
        selectors[8] = CareLedgerHandler.advance.selector;
        selectors[9] = CareLedgerHandler.grant.selector; // grants twice as often: they feed the rest
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function afterInvariant() public view {
        console.log("grants", handler.grants(), "revocations", handler.revocations());
        console.log("enrollments", handler.enrollments(), "anchors", handler.anchors());
        console.log("erasures", handler.erasures(), "log batches", handler.logBatches());
        console.log("replays refused", handler.replaysRefused(), "suspensions", handler.suspensions());
    }

    /// @notice A revoked, expired or not yet valid consent never permits; a live one does.
    function invariant_revokedOrExpiredConsentNeverPermits() public view {
        assertEq(handler.consentViolations(), 0);
        assertEq(handler.pairCountMismatches(), 0);
        assertEq(handler.ghost_revokedTwice(), 0);
    }

    /// @notice Every successful state change was sent by an active member's admin or relayer key.
    function invariant_onlyActiveMembersChangeState() public view {
        assertEq(handler.ghost_inactiveSenderActed(), 0);
        assertEq(handler.ghost_nonClinicActed(), 0);
        assertEq(handler.ghost_wrongCustodianEnrolled(), 0);
    }

    /// @notice A suspended member can neither anchor, relay nor log.
    function invariant_suspendedMemberCannotAct() public view {
        assertEq(handler.ghost_suspendedMemberActed(), 0);
    }

    /// @notice A signed message is never usable twice, nor after its deadline, nor without its signer.
    function invariant_signedMessageUsableOnceBeforeDeadline() public view {
        assertEq(handler.ghost_messageUsedTwice(), 0);
        assertEq(handler.ghost_messageUsedAfterDeadline(), 0);
        assertEq(handler.ghost_forgedSignatureAccepted(), 0);
    }

    /// @notice Records are anchored only for patients enrolled at the anchoring custodian.
    function invariant_recordsAnchoredOnlyForEnrolledPatients() public view {
        assertEq(handler.ghost_anchoredForUnenrolled(), 0);
        assertEq(handler.enrollmentMismatches(), 0);
        assertEq(records.batchCount(), handler.batchCount());
    }

    /// @notice No record is marked erased without its patient's signature.
    function invariant_noErasureWithoutPatientSignature() public view {
        assertEq(handler.ghost_erasedWithoutPatient(), 0);
        assertEq(handler.erasedWithoutSignature(), 0);
    }

    /// @notice The access log holds exactly the valid entries of successful batches.
    function invariant_accessLogHoldsOnlyValidEntries() public view {
        assertEq(handler.ghost_invalidEntryLogged(), 0);
        assertEq(accessLog.entryCount(), handler.ghostLogEntries());
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
