// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {Test, console} from "forge-std/Test.sol";
import {MemberRegistry} from "../../../contracts/MemberRegistry.sol";
import {Role} from "../../../contracts/types/Codes.sol";
import {CouncilHandler} from "./handlers/CouncilHandler.sol";

/// @title Invariants of the council: thresholds cannot be bypassed and nothing else changes membership
contract CouncilInvariantTest is Test {
    MemberRegistry internal registry;
    CouncilHandler internal handler;

    function setUp() public {
        vm.warp(1_767_225_600);
        address[5] memory seatCandidates =
            [makeAddr("seat1"), makeAddr("seat2"), makeAddr("seat3"), makeAddr("seat4"), makeAddr("seat5")];
        address[] memory founding = new address[](3);
        founding[0] = seatCandidates[0];
        founding[1] = seatCandidates[1];
        founding[2] = seatCandidates[2];
        registry = new MemberRegistry(founding, 2, 7 days);

        address[4] memory members = [makeAddr("clinic"), makeAddr("insurer"), makeAddr("research"), makeAddr("auditor")];
        // Two members admitted up front, through the council like any other.
        _admit(founding, members[0], Role.CLINIC);
        _admit(founding, members[1], Role.INSURER);

        address[6] memory keys = [
            makeAddr("key1"),
            makeAddr("key2"),
            makeAddr("key3"),
            seatCandidates[3], // a seat candidate bound as a key, then proposed as a seat
            seatCandidates[0],
            members[2] // a member candidate bound as a key before its admission
        ];
        handler = new CouncilHandler(registry, seatCandidates, members, keys);

        bytes4[] memory selectors = new bytes4[](6);
        selectors[0] = CouncilHandler.propose.selector;
        selectors[1] = CouncilHandler.vote.selector;
        selectors[2] = CouncilHandler.warp.selector;
        selectors[3] = CouncilHandler.setRelayer.selector;
        selectors[4] = CouncilHandler.addSigner.selector;
        selectors[5] = CouncilHandler.removeSigner.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function _admit(address[] memory founding, address member, Role role) internal {
        vm.prank(founding[0]);
        uint256 id = registry.proposeAdmit(member, role, "Member", "https://member.example.org");
        vm.prank(founding[1]);
        registry.vote(id);
    }

    function afterInvariant() public view {
        console.log("executions", handler.ghost_executions(), "keys", handler.ghost_keyBindings());
        console.log("proposals", registry.proposalCount(), "members", registry.memberCount());
        console.log(
            "propose calls",
            handler.calls(CouncilHandler.propose.selector),
            "vote calls",
            handler.calls(CouncilHandler.vote.selector)
        );
    }

    /// @notice A member's status changes only through executed proposals.
    function invariant_statusChangesOnlyThroughExecutedProposals() public view {
        assertEq(handler.statusMismatches(), 0);
    }

    /// @notice Seats change only through executed proposals.
    function invariant_seatsChangeOnlyThroughExecutedProposals() public view {
        assertEq(handler.seatMismatches(), 0);
        assertEq(handler.unexplainedExecutions(), 0);
    }

    /// @notice The threshold changes only through executed proposals and stays within 1..seats.
    function invariant_thresholdWithinSeats() public view {
        uint256 t = registry.threshold();
        assertEq(t, handler.modelThreshold());
        assertGe(t, 1);
        assertLe(t, registry.seats().length);
    }

    /// @notice No proposal executed without approvals of current seats reaching the threshold,
    /// and none that reached it was left pending.
    function invariant_councilThresholdCannotBeBypassed() public view {
        assertEq(handler.ghost_executionsBelowThreshold(), 0);
        assertEq(handler.ghost_missedExecutions(), 0);
    }

    /// @notice Only seats propose or vote, once each, and only before the deadline.
    function invariant_onlySeatsVoteOnceBeforeDeadline() public view {
        assertEq(handler.ghost_nonSeatActions(), 0);
        assertEq(handler.ghost_doubleVotes(), 0);
        assertEq(handler.ghost_votesAfterDeadline(), 0);
    }

    /// @notice Key bindings stay consistent: one member per key, active only with an active member.
    function invariant_keyBindingsConsistent() public view {
        assertEq(handler.keyInconsistencies(), 0);
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
