// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {stdError} from "forge-std/StdError.sol";
import {Fixture} from "./utils/Fixture.sol";
import {MemberRegistry} from "../../contracts/MemberRegistry.sol";
import {IMemberRegistry} from "../../contracts/interfaces/IMemberRegistry.sol";
import {Role, MemberStatus} from "../../contracts/types/Codes.sol";

contract MemberRegistryTest is Fixture {
    address internal newcomer;
    address internal newSeat;

    function setUp() public override {
        super.setUp();
        newcomer = makeAddr("newcomer");
        newSeat = makeAddr("seat4");
    }

    function _err(bytes4 selector) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector);
    }

    function _proposeThreshold(uint256 value) internal {
        vm.prank(seat1);
        uint256 id = registry.proposeThreshold(value);
        vm.prank(seat2);
        registry.vote(id);
    }

    function _removeSeat(address seat, address by1, address by2) internal {
        vm.prank(by1);
        uint256 id = registry.proposeRemoveSeat(seat);
        vm.prank(by2);
        assertTrue(registry.vote(id));
    }

    function _deploy(address[] memory seats_, uint256 threshold_) internal returns (MemberRegistry) {
        return new MemberRegistry(seats_, threshold_, VOTING_PERIOD);
    }

    function _three() internal view returns (address[] memory s) {
        s = new address[](3);
        s[0] = seat1;
        s[1] = seat2;
        s[2] = seat3;
    }

    // ================================================================== constructor

    function test_constructor_setsSeatsThresholdAndVotingPeriod() public view {
        address[] memory s = registry.seats();
        assertEq(s.length, 3);
        assertEq(s[0], seat1);
        assertEq(s[1], seat2);
        assertEq(s[2], seat3);
        assertTrue(registry.isSeat(seat1) && registry.isSeat(seat2) && registry.isSeat(seat3));
        assertFalse(registry.isSeat(clinicA));
        assertEq(registry.threshold(), COUNCIL_THRESHOLD);
        assertEq(registry.votingPeriod(), VOTING_PERIOD);
    }

    function test_constructor_emitsSeatsAndThreshold() public {
        vm.expectEmit(true, false, false, true);
        emit IMemberRegistry.SeatAdded(seat1);
        vm.expectEmit(true, false, false, true);
        emit IMemberRegistry.SeatAdded(seat2);
        vm.expectEmit(true, false, false, true);
        emit IMemberRegistry.SeatAdded(seat3);
        vm.expectEmit(false, false, false, true);
        emit IMemberRegistry.ThresholdChanged(2);
        _deploy(_three(), 2);
    }

    function test_constructor_revertsOnZeroThreshold() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidThreshold.selector, 0, 3));
        _deploy(_three(), 0);
    }

    function test_constructor_revertsOnThresholdAboveSeats() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidThreshold.selector, 4, 3));
        _deploy(_three(), 4);
    }

    function test_constructor_revertsWithoutSeats() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidThreshold.selector, 1, 0));
        _deploy(new address[](0), 1);
    }

    function test_constructor_revertsOnDuplicateSeat() public {
        address[] memory s = _three();
        s[2] = seat1;
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryAlreadySeated.selector, seat1));
        _deploy(s, 2);
    }

    function test_constructor_revertsOnZeroSeat() public {
        address[] memory s = _three();
        s[1] = address(0);
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryZeroAddress.selector));
        _deploy(s, 2);
    }

    // ================================================================== fixture

    function test_fixture_admittedEveryMemberThroughTheCouncil() public view {
        assertEq(registry.memberCount(), 5);
        assertEq(registry.memberAt(0), clinicA);
        assertEq(registry.memberAt(1), clinicB);
        assertEq(registry.memberAt(2), insurer);
        assertEq(registry.memberAt(3), research);
        assertEq(registry.memberAt(4), auditor);
        assertEq(registry.proposalCount(), 5);
        for (uint256 i = 0; i < 5; ++i) {
            assertTrue(registry.getProposal(i).executed);
            assertEq(registry.approvals(i), 2);
        }
        IMemberRegistry.Member memory a = registry.getMember(clinicA);
        assertEq(uint8(a.role), uint8(Role.CLINIC));
        assertEq(uint8(a.status), uint8(MemberStatus.ACTIVE));
        assertEq(a.relayer, clinicARelayer);
        assertEq(a.name, "Clinic A");
        assertEq(a.endpoint, ENDPOINT_A);
    }

    // ================================================================== proposeAdmit

    function test_proposeAdmit_createsProposalWithTheProposersApproval() public {
        uint256 expectedId = registry.proposalCount();
        uint64 deadline = uint64(block.timestamp + VOTING_PERIOD);
        vm.expectEmit(true, true, true, true, address(registry));
        emit IMemberRegistry.ProposalCreated(
            expectedId, seat3, IMemberRegistry.Action.ADMIT, newcomer, Role.INSURER, 0, "Newcomer", "", deadline
        );
        vm.expectEmit(true, true, false, true, address(registry));
        emit IMemberRegistry.ProposalVoted(expectedId, seat3, 1, 2);
        vm.prank(seat3);
        uint256 id = registry.proposeAdmit(newcomer, Role.INSURER, "Newcomer", "");

        assertEq(id, expectedId);
        assertEq(registry.proposalCount(), expectedId + 1);
        IMemberRegistry.Proposal memory p = registry.getProposal(id);
        assertEq(uint8(p.action), uint8(IMemberRegistry.Action.ADMIT));
        assertEq(uint8(p.role), uint8(Role.INSURER));
        assertFalse(p.executed);
        assertEq(p.deadline, deadline);
        assertEq(p.proposer, seat3);
        assertEq(p.subject, newcomer);
        assertEq(p.name, "Newcomer");
        assertEq(registry.approvals(id), 1);
        assertTrue(registry.hasVoted(id, seat3));
        assertFalse(registry.hasVoted(id, seat1));
        // Not admitted until the threshold is reached.
        assertEq(uint8(registry.getMember(newcomer).status), uint8(MemberStatus.NONE));
    }

    function test_proposeAdmit_revertsForNonSeat() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, clinicA));
        vm.prank(clinicA);
        registry.proposeAdmit(newcomer, Role.CLINIC, "N", "https://n.example.org");
    }

    function test_proposeAdmit_revertsOnZeroAddress() public {
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryZeroAddress.selector));
        vm.prank(seat1);
        registry.proposeAdmit(address(0), Role.CLINIC, "N", "https://n.example.org");
    }

    function test_proposeAdmit_revertsOnExistingMember() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryAlreadyMember.selector, insurer));
        vm.prank(seat1);
        registry.proposeAdmit(insurer, Role.INSURER, "Again", "");
    }

    function test_proposeAdmit_revertsOnSuspendedMember() public {
        _suspend(insurer);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryAlreadyMember.selector, insurer));
        vm.prank(seat1);
        registry.proposeAdmit(insurer, Role.INSURER, "Again", "");
    }

    function test_proposeAdmit_revertsOnRelayerKey() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, clinicARelayer));
        vm.prank(seat1);
        registry.proposeAdmit(clinicARelayer, Role.RESEARCH, "Key", "");
    }

    function test_proposeAdmit_revertsOnSignerKey() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, insurerSigner));
        vm.prank(seat1);
        registry.proposeAdmit(insurerSigner, Role.RESEARCH, "Key", "");
    }

    function test_proposeAdmit_revertsOnRoleNone() public {
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidRole.selector));
        vm.prank(seat1);
        registry.proposeAdmit(newcomer, Role.NONE, "N", "");
    }

    function test_proposeAdmit_revertsOnEmptyName() public {
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidText.selector));
        vm.prank(seat1);
        registry.proposeAdmit(newcomer, Role.INSURER, "", "");
    }

    function test_proposeAdmit_revertsOnOverlongName() public {
        string memory name = string(new bytes(257));
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidText.selector));
        vm.prank(seat1);
        registry.proposeAdmit(newcomer, Role.INSURER, name, "");
    }

    function test_proposeAdmit_acceptsNameOf256Bytes() public {
        string memory name = string(new bytes(256));
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.INSURER, name, "");
        assertEq(bytes(registry.getProposal(id).name).length, 256);
    }

    function test_proposeAdmit_revertsOnClinicWithoutEndpoint() public {
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidText.selector));
        vm.prank(seat1);
        registry.proposeAdmit(newcomer, Role.CLINIC, "Clinic C", "");
    }

    function test_proposeAdmit_revertsOnOverlongEndpointForNonClinic() public {
        string memory endpoint = string(new bytes(257));
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidText.selector));
        vm.prank(seat1);
        registry.proposeAdmit(newcomer, Role.AUDITOR, "Auditor 2", endpoint);
    }

    function test_proposeAdmit_allowsNonClinicWithoutEndpoint() public {
        _admit(newcomer, Role.AUDITOR, "Auditor 2", "");
        assertEq(uint8(registry.getMember(newcomer).status), uint8(MemberStatus.ACTIVE));
        assertEq(registry.getMember(newcomer).endpoint, "");
    }

    // ================================================================== vote

    function test_vote_executesAdmissionAtThreshold() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.CLINIC, "Clinic C", "https://clinic-c.example.org");

        vm.expectEmit(true, true, false, true, address(registry));
        emit IMemberRegistry.ProposalVoted(id, seat3, 2, 2);
        vm.expectEmit(true, false, false, true, address(registry));
        emit IMemberRegistry.MemberAdmitted(newcomer, Role.CLINIC, "Clinic C", "https://clinic-c.example.org");
        vm.expectEmit(true, true, false, true, address(registry));
        emit IMemberRegistry.ProposalExecuted(id, IMemberRegistry.Action.ADMIT, newcomer);
        vm.prank(seat3);
        assertTrue(registry.vote(id));

        assertTrue(registry.getProposal(id).executed);
        assertEq(registry.memberCount(), 6);
        assertEq(registry.memberAt(5), newcomer);
        (address member, Role role) = registry.activeSender(newcomer);
        assertEq(member, newcomer);
        assertEq(uint8(role), uint8(Role.CLINIC));
    }

    function test_vote_belowThresholdDoesNotExecute() public {
        _proposeThreshold(3);
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        vm.prank(seat2);
        assertFalse(registry.vote(id));
        assertEq(registry.approvals(id), 2);
        assertFalse(registry.getProposal(id).executed);
        assertEq(uint8(registry.getMember(newcomer).status), uint8(MemberStatus.NONE));
        vm.prank(seat3);
        assertTrue(registry.vote(id));
        assertEq(uint8(registry.getMember(newcomer).status), uint8(MemberStatus.ACTIVE));
    }

    function test_vote_revertsForNonSeat() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, clinicA));
        vm.prank(clinicA);
        registry.vote(id);
    }

    function test_vote_revertsOnUnknownProposal() public {
        uint256 id = registry.proposalCount();
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryUnknownProposal.selector, id));
        vm.prank(seat1);
        registry.vote(id);
    }

    function test_vote_revertsOnExecutedProposal() public {
        uint256 id = _admit(newcomer, Role.RESEARCH, "R2", "");
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryProposalExecuted.selector, id));
        vm.prank(seat3);
        registry.vote(id);
    }

    function test_vote_revertsOnExpiredProposal() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        uint64 deadline = registry.getProposal(id).deadline;
        vm.warp(uint256(deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryProposalExpired.selector, id, deadline));
        vm.prank(seat2);
        registry.vote(id);
    }

    function test_vote_succeedsAtDeadline() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        vm.warp(registry.getProposal(id).deadline);
        vm.prank(seat2);
        assertTrue(registry.vote(id));
    }

    function test_vote_revertsOnDoubleVote() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryAlreadyVoted.selector, id, seat1));
        vm.prank(seat1);
        registry.vote(id);
    }

    function test_vote_removedSeatsApprovalNoLongerCounts() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        assertEq(registry.approvals(id), 1);

        _removeSeat(seat1, seat2, seat3);
        assertEq(registry.approvals(id), 0, "removed seat's approval still counted");
        assertFalse(registry.hasVoted(id, seat1), "hasVoted answers for the current seating only");

        // One current seat is below the threshold of two.
        vm.prank(seat2);
        assertFalse(registry.vote(id));
        assertEq(registry.approvals(id), 1);
        vm.prank(seat3);
        assertTrue(registry.vote(id));
        assertEq(uint8(registry.getMember(newcomer).status), uint8(MemberStatus.ACTIVE));
    }

    /// @dev A seat removed and seated again starts afresh: its earlier approval does not come back.
    function test_vote_reseatedSeatsEarlierApprovalDoesNotCount() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        _removeSeat(seat1, seat2, seat3);
        vm.prank(seat2);
        uint256 back = registry.proposeAddSeat(seat1);
        vm.prank(seat3);
        assertTrue(registry.vote(back));
        assertTrue(registry.isSeat(seat1));
        assertEq(registry.approvals(id), 0, "approval from an earlier seating counted");
        assertFalse(registry.hasVoted(id, seat1));
        // It may approve again, and that approval counts.
        vm.prank(seat1);
        assertFalse(registry.vote(id));
        assertEq(registry.approvals(id), 1);
        assertTrue(registry.hasVoted(id, seat1));
    }

    function test_vote_removedSeatCannotVote() public {
        vm.prank(seat2);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        _removeSeat(seat1, seat2, seat3);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, seat1));
        vm.prank(seat1);
        registry.vote(id);
    }

    function test_vote_newSeatCanVoteOnPendingProposal() public {
        vm.prank(seat1);
        uint256 pending = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        vm.prank(seat2);
        uint256 add = registry.proposeAddSeat(newSeat);
        vm.prank(seat3);
        registry.vote(add);
        vm.prank(newSeat);
        assertTrue(registry.vote(pending));
    }

    function test_vote_reChecksAdmissionAtExecution() public {
        vm.prank(seat1);
        uint256 first = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        vm.prank(seat2);
        uint256 second = registry.proposeAdmit(newcomer, Role.INSURER, "I2", "");
        vm.prank(seat3);
        registry.vote(first);

        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryAlreadyMember.selector, newcomer));
        vm.prank(seat3);
        registry.vote(second);
        assertEq(uint8(registry.getMember(newcomer).role), uint8(Role.RESEARCH));
        assertFalse(registry.getProposal(second).executed);
    }

    function test_vote_reChecksKeyUseAtAdmission() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        // Meanwhile a member binds the address as one of its keys.
        vm.prank(auditor);
        registry.addSigner(newcomer);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, newcomer));
        vm.prank(seat2);
        registry.vote(id);
    }

    function test_vote_reChecksSuspensionAtExecution() public {
        vm.prank(seat1);
        uint256 first = registry.proposeSuspend(research);
        vm.prank(seat2);
        uint256 second = registry.proposeSuspend(research);
        vm.prank(seat3);
        registry.vote(first);
        vm.expectRevert(
            abi.encodeWithSelector(IMemberRegistry.MemberRegistryWrongStatus.selector, research, MemberStatus.SUSPENDED)
        );
        vm.prank(seat3);
        registry.vote(second);
    }

    function test_vote_reChecksReinstatementAtExecution() public {
        _suspend(research);
        vm.prank(seat1);
        uint256 first = registry.proposeReinstate(research);
        vm.prank(seat2);
        uint256 second = registry.proposeReinstate(research);
        vm.prank(seat3);
        registry.vote(first);
        vm.expectRevert(
            abi.encodeWithSelector(IMemberRegistry.MemberRegistryWrongStatus.selector, research, MemberStatus.ACTIVE)
        );
        vm.prank(seat3);
        registry.vote(second);
    }

    function test_vote_reChecksAddSeatAtExecution() public {
        vm.prank(seat1);
        uint256 first = registry.proposeAddSeat(newSeat);
        vm.prank(seat2);
        uint256 second = registry.proposeAddSeat(newSeat);
        vm.prank(seat3);
        registry.vote(first);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryAlreadySeated.selector, newSeat));
        vm.prank(seat3);
        registry.vote(second);
    }

    function test_vote_reChecksRemovedSeatAtExecution() public {
        vm.prank(seat1);
        uint256 first = registry.proposeRemoveSeat(seat3);
        vm.prank(seat2);
        uint256 second = registry.proposeRemoveSeat(seat3);
        vm.prank(seat2);
        registry.vote(first);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, seat3));
        vm.prank(seat1);
        registry.vote(second);
    }

    function test_vote_reChecksSeatCountAtRemoval() public {
        // Two removals proposed while three seats stand; after the first, the second would
        // leave one seat under a threshold of two.
        vm.prank(seat1);
        uint256 first = registry.proposeRemoveSeat(seat3);
        vm.prank(seat1);
        uint256 second = registry.proposeRemoveSeat(seat2);
        vm.prank(seat2);
        registry.vote(first);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidThreshold.selector, 2, 1));
        vm.prank(seat2);
        registry.vote(second);
        assertEq(registry.seats().length, 2);
    }

    function test_vote_reChecksThresholdAtExecution() public {
        vm.prank(seat1);
        uint256 raise = registry.proposeThreshold(3);
        _removeSeat(seat3, seat2, seat3);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidThreshold.selector, 3, 2));
        vm.prank(seat2);
        registry.vote(raise);
        assertEq(registry.threshold(), 2);
    }

    // ================================================================== proposeSuspend

    function test_proposeSuspend_suspendsAtThreshold() public {
        vm.prank(seat1);
        uint256 id = registry.proposeSuspend(clinicA);
        vm.expectEmit(true, false, false, true, address(registry));
        emit IMemberRegistry.MemberSuspended(clinicA);
        vm.expectEmit(true, true, false, true, address(registry));
        emit IMemberRegistry.ProposalExecuted(id, IMemberRegistry.Action.SUSPEND, clinicA);
        vm.prank(seat2);
        registry.vote(id);

        assertEq(uint8(registry.getMember(clinicA).status), uint8(MemberStatus.SUSPENDED));
        (address m,) = registry.activeSender(clinicA);
        assertEq(m, address(0));
        (m,) = registry.activeSender(clinicARelayer);
        assertEq(m, address(0));
    }

    function test_proposeSuspend_revertsForNonMember() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotMember.selector, outsider));
        vm.prank(seat1);
        registry.proposeSuspend(outsider);
    }

    function test_proposeSuspend_revertsForOperationalKey() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotMember.selector, clinicARelayer));
        vm.prank(seat1);
        registry.proposeSuspend(clinicARelayer);
    }

    function test_proposeSuspend_revertsForSuspendedMember() public {
        _suspend(clinicA);
        vm.expectRevert(
            abi.encodeWithSelector(IMemberRegistry.MemberRegistryWrongStatus.selector, clinicA, MemberStatus.SUSPENDED)
        );
        vm.prank(seat1);
        registry.proposeSuspend(clinicA);
    }

    function test_proposeSuspend_revertsForNonSeat() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, clinicB));
        vm.prank(clinicB);
        registry.proposeSuspend(clinicA);
    }

    // ================================================================== proposeReinstate

    function test_proposeReinstate_reinstatesAtThreshold() public {
        _suspend(clinicA);
        vm.prank(seat1);
        uint256 id = registry.proposeReinstate(clinicA);
        vm.expectEmit(true, false, false, true, address(registry));
        emit IMemberRegistry.MemberReinstated(clinicA);
        vm.expectEmit(true, true, false, true, address(registry));
        emit IMemberRegistry.ProposalExecuted(id, IMemberRegistry.Action.REINSTATE, clinicA);
        vm.prank(seat3);
        registry.vote(id);

        assertEq(uint8(registry.getMember(clinicA).status), uint8(MemberStatus.ACTIVE));
        // The relayer binding survived the suspension.
        (address m,) = registry.activeSender(clinicARelayer);
        assertEq(m, clinicA);
    }

    function test_proposeReinstate_revertsForActiveMember() public {
        vm.expectRevert(
            abi.encodeWithSelector(IMemberRegistry.MemberRegistryWrongStatus.selector, clinicA, MemberStatus.ACTIVE)
        );
        vm.prank(seat1);
        registry.proposeReinstate(clinicA);
    }

    function test_proposeReinstate_revertsForNonMember() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotMember.selector, outsider));
        vm.prank(seat1);
        registry.proposeReinstate(outsider);
    }

    function test_proposeReinstate_revertsForNonSeat() public {
        _suspend(clinicA);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, clinicA));
        vm.prank(clinicA);
        registry.proposeReinstate(clinicA);
    }

    // ================================================================== proposeAddSeat

    function test_proposeAddSeat_addsSeatAtThreshold() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAddSeat(newSeat);
        vm.expectEmit(true, false, false, true, address(registry));
        emit IMemberRegistry.SeatAdded(newSeat);
        vm.expectEmit(true, true, false, true, address(registry));
        emit IMemberRegistry.ProposalExecuted(id, IMemberRegistry.Action.ADD_SEAT, newSeat);
        vm.prank(seat2);
        registry.vote(id);
        assertTrue(registry.isSeat(newSeat));
        assertEq(registry.seats().length, 4);
        assertEq(registry.seats()[3], newSeat);
    }

    function test_proposeAddSeat_revertsOnZeroAddress() public {
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryZeroAddress.selector));
        vm.prank(seat1);
        registry.proposeAddSeat(address(0));
    }

    function test_proposeAddSeat_revertsOnExistingSeat() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryAlreadySeated.selector, seat2));
        vm.prank(seat1);
        registry.proposeAddSeat(seat2);
    }

    function test_proposeAddSeat_revertsForNonSeat() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, newSeat));
        vm.prank(newSeat);
        registry.proposeAddSeat(newSeat);
    }

    // ================================================================== proposeRemoveSeat

    function test_proposeRemoveSeat_removesSeatAtThreshold() public {
        vm.prank(seat1);
        uint256 id = registry.proposeRemoveSeat(seat2);
        vm.expectEmit(true, false, false, true, address(registry));
        emit IMemberRegistry.SeatRemoved(seat2);
        vm.expectEmit(true, true, false, true, address(registry));
        emit IMemberRegistry.ProposalExecuted(id, IMemberRegistry.Action.REMOVE_SEAT, seat2);
        vm.prank(seat3);
        registry.vote(id);

        assertFalse(registry.isSeat(seat2));
        address[] memory s = registry.seats();
        assertEq(s.length, 2);
        assertTrue((s[0] == seat1 && s[1] == seat3) || (s[0] == seat3 && s[1] == seat1));
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, seat2));
        vm.prank(seat2);
        registry.proposeSuspend(clinicA);
    }

    function test_proposeRemoveSeat_proposerMayRemoveItself() public {
        _removeSeat(seat1, seat1, seat2);
        assertFalse(registry.isSeat(seat1));
    }

    function test_proposeRemoveSeat_revertsForNonSeatSubject() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, clinicA));
        vm.prank(seat1);
        registry.proposeRemoveSeat(clinicA);
    }

    function test_proposeRemoveSeat_revertsBelowThreshold() public {
        _proposeThreshold(3);
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidThreshold.selector, 3, 2));
        vm.prank(seat1);
        registry.proposeRemoveSeat(seat3);
    }

    function test_proposeRemoveSeat_revertsForNonSeat() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, outsider));
        vm.prank(outsider);
        registry.proposeRemoveSeat(seat3);
    }

    // ================================================================== proposeThreshold

    function test_proposeThreshold_changesThresholdAtThreshold() public {
        vm.prank(seat1);
        uint256 id = registry.proposeThreshold(3);
        vm.expectEmit(false, false, false, true, address(registry));
        emit IMemberRegistry.ThresholdChanged(3);
        vm.expectEmit(true, true, false, true, address(registry));
        emit IMemberRegistry.ProposalExecuted(id, IMemberRegistry.Action.SET_THRESHOLD, address(0));
        vm.prank(seat2);
        registry.vote(id);
        assertEq(registry.threshold(), 3);
        assertEq(registry.getProposal(id).value, 3);
    }

    function test_proposeThreshold_oneExecutesProposalsAtOnce() public {
        _proposeThreshold(1);
        vm.expectEmit(true, false, false, true, address(registry));
        emit IMemberRegistry.MemberAdmitted(newcomer, Role.RESEARCH, "R2", "");
        vm.prank(seat3);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        assertTrue(registry.getProposal(id).executed);
    }

    function test_proposeThreshold_revertsOnZero() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidThreshold.selector, 0, 3));
        vm.prank(seat1);
        registry.proposeThreshold(0);
    }

    function test_proposeThreshold_revertsAboveSeats() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryInvalidThreshold.selector, 4, 3));
        vm.prank(seat1);
        registry.proposeThreshold(4);
    }

    function test_proposeThreshold_revertsForNonSeat() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotCouncil.selector, auditor));
        vm.prank(auditor);
        registry.proposeThreshold(1);
    }

    // ================================================================== setEndpoint

    function test_setEndpoint_movesGateway() public {
        vm.expectEmit(true, false, false, true, address(registry));
        emit IMemberRegistry.EndpointChanged(clinicA, "https://gw.clinic-a.example.org");
        vm.prank(clinicA);
        registry.setEndpoint("https://gw.clinic-a.example.org");
        assertEq(registry.getMember(clinicA).endpoint, "https://gw.clinic-a.example.org");
    }

    function test_setEndpoint_revertsForRelayerKey() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotMember.selector, clinicARelayer));
        vm.prank(clinicARelayer);
        registry.setEndpoint("https://evil.example.org");
    }

    function test_setEndpoint_revertsForNonMember() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotMember.selector, seat1));
        vm.prank(seat1);
        registry.setEndpoint("https://x.example.org");
    }

    function test_setEndpoint_revertsOnEmpty() public {
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidText.selector));
        vm.prank(clinicA);
        registry.setEndpoint("");
    }

    function test_setEndpoint_revertsOnOverlong() public {
        string memory endpoint = string(new bytes(257));
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryInvalidText.selector));
        vm.prank(clinicA);
        registry.setEndpoint(endpoint);
    }

    // ================================================================== setRelayer

    function test_setRelayer_bindsKey() public {
        address key = makeAddr("insurer.relayer");
        vm.expectEmit(true, true, true, true, address(registry));
        emit IMemberRegistry.RelayerChanged(insurer, address(0), key);
        vm.prank(insurer);
        registry.setRelayer(key);

        assertEq(registry.getMember(insurer).relayer, key);
        (address m, IMemberRegistry.KeyKind kind) = registry.keyOf(key);
        assertEq(m, insurer);
        assertEq(uint8(kind), uint8(IMemberRegistry.KeyKind.RELAYER));
        (address sender, Role role) = registry.activeSender(key);
        assertEq(sender, insurer);
        assertEq(uint8(role), uint8(Role.INSURER));
        // A relayer key sends transactions; it does not sign requests.
        (address signer,) = registry.activeSigner(key);
        assertEq(signer, address(0));
    }

    function test_setRelayer_rotatesAndFreesPreviousKey() public {
        address next = makeAddr("clinicA.relayer2");
        vm.expectEmit(true, true, true, true, address(registry));
        emit IMemberRegistry.RelayerChanged(clinicA, clinicARelayer, next);
        vm.prank(clinicA);
        registry.setRelayer(next);

        (address m, IMemberRegistry.KeyKind kind) = registry.keyOf(clinicARelayer);
        assertEq(m, address(0));
        assertEq(uint8(kind), uint8(IMemberRegistry.KeyKind.NONE));
        (m,) = registry.activeSender(clinicARelayer);
        assertEq(m, address(0));
        (m,) = registry.activeSender(next);
        assertEq(m, clinicA);
        // The freed key may now serve another member.
        vm.prank(clinicB);
        registry.addSigner(clinicARelayer);
        (m,) = registry.activeSigner(clinicARelayer);
        assertEq(m, clinicB);
    }

    function test_setRelayer_worksWhileSuspendedButKeyStaysInactive() public {
        _suspend(research);
        address key = makeAddr("research.relayer");
        vm.prank(research);
        registry.setRelayer(key);
        (address m,) = registry.activeSender(key);
        assertEq(m, address(0));
        (m,) = registry.keyOf(key);
        assertEq(m, research);
    }

    function test_setRelayer_rotatedWhileSuspendedFollowsReinstatement() public {
        // activeSender reads a copy of the member's status kept with each key: the copy of a
        // key bound during a suspension must follow the member back to active.
        _suspend(clinicA);
        address next = makeAddr("clinicA.relayer2");
        vm.prank(clinicA);
        registry.setRelayer(next);
        (address m,) = registry.activeSender(next);
        assertEq(m, address(0));
        _reinstate(clinicA);
        Role role;
        (m, role) = registry.activeSender(next);
        assertEq(m, clinicA);
        assertEq(uint8(role), uint8(Role.CLINIC));
        (m,) = registry.activeSender(clinicARelayer);
        assertEq(m, address(0), "the rotated-out key must stay unbound");
        _suspend(clinicA);
        (m,) = registry.activeSender(next);
        assertEq(m, address(0));
    }

    function test_setRelayer_revertsForNonMember() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotMember.selector, clinicARelayer));
        vm.prank(clinicARelayer);
        registry.setRelayer(makeAddr("x"));
    }

    function test_setRelayer_revertsOnZeroAddress() public {
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryZeroAddress.selector));
        vm.prank(clinicA);
        registry.setRelayer(address(0));
    }

    function test_setRelayer_revertsOnAnotherMembersAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, insurer));
        vm.prank(clinicA);
        registry.setRelayer(insurer);
    }

    function test_setRelayer_revertsOnOwnAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, clinicA));
        vm.prank(clinicA);
        registry.setRelayer(clinicA);
    }

    function test_setRelayer_revertsOnAnotherMembersRelayer() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, clinicBRelayer));
        vm.prank(clinicA);
        registry.setRelayer(clinicBRelayer);
    }

    function test_setRelayer_revertsOnCurrentRelayer() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, clinicARelayer));
        vm.prank(clinicA);
        registry.setRelayer(clinicARelayer);
    }

    function test_setRelayer_revertsOnOwnSigner() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, insurerSigner));
        vm.prank(insurer);
        registry.setRelayer(insurerSigner);
    }

    // ================================================================== addSigner

    function test_addSigner_bindsKey() public {
        address key = makeAddr("clinicA.signer");
        vm.expectEmit(true, true, false, true, address(registry));
        emit IMemberRegistry.SignerAdded(clinicA, key);
        vm.prank(clinicA);
        registry.addSigner(key);

        (address m, IMemberRegistry.KeyKind kind) = registry.keyOf(key);
        assertEq(m, clinicA);
        assertEq(uint8(kind), uint8(IMemberRegistry.KeyKind.SIGNER));
        (address signer, Role role) = registry.activeSigner(key);
        assertEq(signer, clinicA);
        assertEq(uint8(role), uint8(Role.CLINIC));
        // A signing key signs requests; it does not send transactions.
        (address sender,) = registry.activeSender(key);
        assertEq(sender, address(0));
    }

    function test_addSigner_allowsSeveralKeys() public {
        address second = makeAddr("insurer.signer2");
        vm.prank(insurer);
        registry.addSigner(second);
        (address a,) = registry.activeSigner(insurerSigner);
        (address b,) = registry.activeSigner(second);
        assertEq(a, insurer);
        assertEq(b, insurer);
    }

    function test_addSigner_revertsForNonMember() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotMember.selector, outsider));
        vm.prank(outsider);
        registry.addSigner(makeAddr("x"));
    }

    function test_addSigner_revertsOnZeroAddress() public {
        vm.expectRevert(_err(IMemberRegistry.MemberRegistryZeroAddress.selector));
        vm.prank(insurer);
        registry.addSigner(address(0));
    }

    function test_addSigner_revertsOnKeyInUse() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, clinicARelayer));
        vm.prank(insurer);
        registry.addSigner(clinicARelayer);
    }

    function test_addSigner_revertsOnExistingSigner() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, insurerSigner));
        vm.prank(insurer);
        registry.addSigner(insurerSigner);
    }

    function test_addSigner_revertsOnMemberAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryKeyInUse.selector, auditor));
        vm.prank(insurer);
        registry.addSigner(auditor);
    }

    // ================================================================== removeSigner

    function test_removeSigner_unbindsKey() public {
        vm.expectEmit(true, true, false, true, address(registry));
        emit IMemberRegistry.SignerRemoved(insurer, insurerSigner);
        vm.prank(insurer);
        registry.removeSigner(insurerSigner);
        (address m, IMemberRegistry.KeyKind kind) = registry.keyOf(insurerSigner);
        assertEq(m, address(0));
        assertEq(uint8(kind), uint8(IMemberRegistry.KeyKind.NONE));
        (m,) = registry.activeSigner(insurerSigner);
        assertEq(m, address(0));
    }

    function test_removeSigner_revertsOnUnknownKey() public {
        address key = makeAddr("never-bound");
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryUnknownKey.selector, key));
        vm.prank(insurer);
        registry.removeSigner(key);
    }

    function test_removeSigner_revertsOnAnotherMembersSigner() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryUnknownKey.selector, insurerSigner));
        vm.prank(clinicA);
        registry.removeSigner(insurerSigner);
    }

    function test_removeSigner_revertsOnRelayerKey() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryUnknownKey.selector, clinicARelayer));
        vm.prank(clinicA);
        registry.removeSigner(clinicARelayer);
    }

    function test_removeSigner_revertsForNonMember() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryNotMember.selector, insurerSigner));
        vm.prank(insurerSigner);
        registry.removeSigner(insurerSigner);
    }

    // ================================================================== views

    function test_activeSender_acceptsAdminAndRelayerOnly() public view {
        (address m, Role r) = registry.activeSender(clinicA);
        assertEq(m, clinicA);
        assertEq(uint8(r), uint8(Role.CLINIC));
        (m, r) = registry.activeSender(clinicARelayer);
        assertEq(m, clinicA);
        assertEq(uint8(r), uint8(Role.CLINIC));
        (m, r) = registry.activeSender(insurerSigner);
        assertEq(m, address(0));
        assertEq(uint8(r), uint8(Role.NONE));
        (m, r) = registry.activeSender(outsider);
        assertEq(m, address(0));
        (m, r) = registry.activeSender(seat1);
        assertEq(m, address(0), "a council seat is not a member");
    }

    function test_activeSender_zeroForSuspendedMember() public {
        _suspend(clinicB);
        (address m, Role r) = registry.activeSender(clinicB);
        assertEq(m, address(0));
        assertEq(uint8(r), uint8(Role.NONE));
        (m,) = registry.activeSender(clinicBRelayer);
        assertEq(m, address(0));
        _reinstate(clinicB);
        (m,) = registry.activeSender(clinicBRelayer);
        assertEq(m, clinicB);
    }

    function test_activeSigner_acceptsAdminAndSignerOnly() public view {
        (address m, Role r) = registry.activeSigner(insurer);
        assertEq(m, insurer);
        assertEq(uint8(r), uint8(Role.INSURER));
        (m,) = registry.activeSigner(insurerSigner);
        assertEq(m, insurer);
        (m,) = registry.activeSigner(clinicARelayer);
        assertEq(m, address(0));
        (m,) = registry.activeSigner(outsider);
        assertEq(m, address(0));
    }

    function test_activeSigner_zeroForSuspendedMember() public {
        _suspend(insurer);
        (address m,) = registry.activeSigner(insurerSigner);
        assertEq(m, address(0));
        (m,) = registry.activeSigner(insurer);
        assertEq(m, address(0));
    }

    function test_keyOf_reportsBindingWhateverStatus() public {
        _suspend(clinicA);
        (address m, IMemberRegistry.KeyKind kind) = registry.keyOf(clinicA);
        assertEq(m, clinicA);
        assertEq(uint8(kind), uint8(IMemberRegistry.KeyKind.ADMIN));
        (m, kind) = registry.keyOf(clinicARelayer);
        assertEq(m, clinicA);
        assertEq(uint8(kind), uint8(IMemberRegistry.KeyKind.RELAYER));
        (m, kind) = registry.keyOf(insurerSigner);
        assertEq(m, insurer);
        assertEq(uint8(kind), uint8(IMemberRegistry.KeyKind.SIGNER));
        (m, kind) = registry.keyOf(outsider);
        assertEq(m, address(0));
        assertEq(uint8(kind), uint8(IMemberRegistry.KeyKind.NONE));
    }

    function test_getMember_zeroForUnknownAddress() public view {
        IMemberRegistry.Member memory m = registry.getMember(outsider);
        assertEq(uint8(m.role), uint8(Role.NONE));
        assertEq(uint8(m.status), uint8(MemberStatus.NONE));
        assertEq(m.relayer, address(0));
        assertEq(bytes(m.name).length, 0);
    }

    function test_memberAt_revertsOutOfRange() public {
        vm.expectRevert(stdError.indexOOBError);
        registry.memberAt(5);
    }

    function test_getProposal_revertsOnUnknownProposal() public {
        vm.expectRevert(abi.encodeWithSelector(IMemberRegistry.MemberRegistryUnknownProposal.selector, 99));
        registry.getProposal(99);
    }

    function test_approvals_zeroForUnknownProposal() public view {
        assertEq(registry.approvals(99), 0);
        assertFalse(registry.hasVoted(99, seat1));
    }

    function test_allowlist_listsSeatsActiveMembersAndRelayers() public view {
        address[] memory list = registry.allowlist();
        // 3 seats + 5 member admins + 2 relayers; signing keys never send transactions.
        assertEq(list.length, 10);
        _assertContains(list, seat1);
        _assertContains(list, seat2);
        _assertContains(list, seat3);
        _assertContains(list, clinicA);
        _assertContains(list, clinicARelayer);
        _assertContains(list, clinicB);
        _assertContains(list, clinicBRelayer);
        _assertContains(list, insurer);
        _assertContains(list, research);
        _assertContains(list, auditor);
        _assertNotContains(list, insurerSigner);
        _assertUnique(list);
    }

    function test_allowlist_dropsSuspendedMemberAndItsRelayer() public {
        _suspend(clinicA);
        address[] memory list = registry.allowlist();
        assertEq(list.length, 8);
        _assertNotContains(list, clinicA);
        _assertNotContains(list, clinicARelayer);
        _reinstate(clinicA);
        list = registry.allowlist();
        _assertContains(list, clinicA);
        _assertContains(list, clinicARelayer);
    }

    function test_allowlist_listsMemberHoldingSeatOnce() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAddSeat(clinicA);
        vm.prank(seat2);
        registry.vote(id);
        address[] memory list = registry.allowlist();
        assertEq(list.length, 10);
        _assertUnique(list);
    }

    function test_allowlist_keepsSuspendedMemberThatHoldsSeatAsSeat() public {
        vm.prank(seat1);
        uint256 id = registry.proposeAddSeat(clinicA);
        vm.prank(seat2);
        registry.vote(id);
        _suspend(clinicA);
        address[] memory list = registry.allowlist();
        _assertContains(list, clinicA);
        _assertNotContains(list, clinicARelayer);
        _assertUnique(list);
    }

    /// Regression: a seat bound as a member's relayer key was listed twice, and Besu's
    /// `perm_addAccountsToAllowlist` refuses duplicates (ACCOUNT_ALLOWLIST_DUPLICATED_ENTRY).
    function test_allowlist_listsSeatThatIsAlsoARelayerOnce() public {
        vm.prank(insurer);
        registry.setRelayer(seat3);
        address[] memory list = registry.allowlist();
        _assertUnique(list);
    }

    function _assertContains(address[] memory list, address account) internal pure {
        for (uint256 i = 0; i < list.length; ++i) {
            if (list[i] == account) return;
        }
        revert("allowlist misses an account");
    }

    function _assertNotContains(address[] memory list, address account) internal pure {
        for (uint256 i = 0; i < list.length; ++i) {
            require(list[i] != account, "allowlist holds an account it should not");
        }
    }

    function _assertUnique(address[] memory list) internal pure {
        for (uint256 i = 0; i < list.length; ++i) {
            for (uint256 j = i + 1; j < list.length; ++j) {
                require(list[i] != list[j], "allowlist lists an account twice");
            }
        }
    }

    // ================================================================== fuzz

    /// @dev Any set of seats voting executes exactly when the current seats' approvals reach the threshold.
    function testFuzz_vote_executesExactlyAtThreshold(uint8 thresholdSeed, uint8 voterMask) public {
        uint256 t = bound(thresholdSeed, 1, 3);
        if (t != 2) _proposeThreshold(t);
        address[3] memory s = [seat1, seat2, seat3];
        // seat1 proposes; then the other seats in voterMask vote in order.
        vm.prank(seat1);
        uint256 id = registry.proposeAdmit(newcomer, Role.RESEARCH, "R2", "");
        uint256 count = 1;
        bool executed = t == 1;
        for (uint256 i = 1; i < 3; ++i) {
            if ((voterMask >> i) & 1 == 0 || executed) continue;
            vm.prank(s[i]);
            bool done = registry.vote(id);
            ++count;
            assertEq(done, count == t);
            executed = done;
        }
        assertEq(registry.getProposal(id).executed, count >= t);
        assertEq(registry.getMember(newcomer).status == MemberStatus.ACTIVE, count >= t);
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
