// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {MemberRegistry} from "../../../../contracts/MemberRegistry.sol";
import {IMemberRegistry} from "../../../../contracts/interfaces/IMemberRegistry.sol";
import {Role, MemberStatus} from "../../../../contracts/types/Codes.sol";

/// @title Drives MemberRegistry's council and key management with random, often wrong, calls
/// @notice Keeps its own model of seats, threshold, statuses and votes, changed only when the
/// handler sees a proposal execute. The invariants compare the registry with this model, so a
/// status, seat or threshold that changed any other way, or a proposal that executed without
/// a threshold of current seats behind it, shows up.
contract CouncilHandler is CommonBase, StdCheats, StdUtils {
    MemberRegistry public immutable registry;

    /// @dev Candidate seats (the first three founded the council) and candidate members.
    address[5] public seatCandidates;
    address[4] public memberCandidates;
    /// @dev Addresses members may bind as keys (two of them are seat candidates, on purpose).
    address[6] public keyCandidates;

    // ---------------------------------------------------------------- model
    mapping(address account => bool) public modelSeat;
    uint256 public modelSeatCount;
    uint256 public modelThreshold;
    mapping(address member => MemberStatus) public modelStatus;
    mapping(uint256 proposalId => mapping(address seat => bool)) public modelVoted;
    mapping(uint256 proposalId => bool) public modelExecuted;
    uint256 public modelProposals;

    // ---------------------------------------------------------------- ghosts
    uint256 public ghost_executions;
    uint256 public ghost_executionsBelowThreshold;
    uint256 public ghost_missedExecutions;
    uint256 public ghost_nonSeatActions;
    uint256 public ghost_votesAfterDeadline;
    uint256 public ghost_doubleVotes;
    uint256 public ghost_keyBindings;
    mapping(bytes4 selector => uint256) public calls;

    constructor(
        MemberRegistry registry_,
        address[5] memory seats_,
        address[4] memory members_,
        address[6] memory keys_
    ) {
        registry = registry_;
        seatCandidates = seats_;
        memberCandidates = members_;
        keyCandidates = keys_;
        address[] memory founding = registry_.seats();
        for (uint256 i = 0; i < founding.length; ++i) {
            modelSeat[founding[i]] = true;
        }
        modelSeatCount = founding.length;
        modelThreshold = registry_.threshold();
        for (uint256 i = 0; i < members_.length; ++i) {
            modelStatus[members_[i]] = registry_.getMember(members_[i]).status;
        }
        modelProposals = registry_.proposalCount();
        for (uint256 i = 0; i < modelProposals; ++i) {
            modelExecuted[i] = registry_.getProposal(i).executed;
        }
    }

    // ---------------------------------------------------------------- actions

    /// @notice A seat (or a non-seat) proposes some action about some subject.
    function propose(uint8 seatSeed, uint8 actionSeed, uint8 subjectSeed, uint8 valueSeed) external {
        calls[this.propose.selector]++;
        address proposer = _pickSeat(seatSeed);
        IMemberRegistry.Action action = IMemberRegistry.Action(actionSeed % 6);
        address subject = _subjectFor(action, subjectSeed);
        uint256 value = valueSeed % 8 == 0 ? valueSeed % 6 : 1 + (valueSeed >> 3) % modelSeatCount;
        Role role = Role(1 + valueSeed % 4);

        bool wasSeat = modelSeat[proposer];
        uint256 thresholdBefore = modelThreshold;
        vm.prank(proposer);
        uint256 id;
        bool ok = true;
        if (action == IMemberRegistry.Action.ADMIT) {
            try registry.proposeAdmit(subject, role, "Member", "https://member.example.org") returns (uint256 p) {
                id = p;
            } catch {
                ok = false;
            }
        } else if (action == IMemberRegistry.Action.SUSPEND) {
            try registry.proposeSuspend(subject) returns (uint256 p) {
                id = p;
            } catch {
                ok = false;
            }
        } else if (action == IMemberRegistry.Action.REINSTATE) {
            try registry.proposeReinstate(subject) returns (uint256 p) {
                id = p;
            } catch {
                ok = false;
            }
        } else if (action == IMemberRegistry.Action.ADD_SEAT) {
            try registry.proposeAddSeat(subject) returns (uint256 p) {
                id = p;
            } catch {
                ok = false;
            }
        } else if (action == IMemberRegistry.Action.REMOVE_SEAT) {
            try registry.proposeRemoveSeat(subject) returns (uint256 p) {
                id = p;
            } catch {
                ok = false;
            }
        } else {
            try registry.proposeThreshold(value) returns (uint256 p) {
                id = p;
            } catch {
                ok = false;
            }
        }
        if (!ok) return;
        if (!wasSeat) ghost_nonSeatActions++;
        modelProposals++;
        modelVoted[id][proposer] = true;
        bool executed = registry.getProposal(id).executed;
        _afterApproval(id, executed, 1, thresholdBefore);
    }

    /// @notice A seat (or a non-seat) votes on some proposal, maybe an expired or executed one.
    function vote(uint8 seatSeed, uint256 proposalSeed) external {
        calls[this.vote.selector]++;
        uint256 count = registry.proposalCount();
        if (count == 0) return;
        // Mostly a pending proposal and a seat that has not voted on it; otherwise any
        // proposal (executed, expired or unknown) and any candidate.
        uint256 id = (proposalSeed >> 8) % (count + 1);
        address seat = _pickSeat(seatSeed);
        if (proposalSeed % 4 != 0) {
            for (uint256 back = 0; back < 8 && back < count; ++back) {
                uint256 candidate = count - 1 - back;
                if (modelExecuted[candidate] || block.timestamp > registry.getProposal(candidate).deadline) continue;
                id = candidate;
                address[15] memory all = _everyone();
                for (uint256 i = 0; i < all.length; ++i) {
                    address s = all[(seatSeed + i) % all.length];
                    if (modelSeat[s] && !modelVoted[id][s]) {
                        seat = s;
                        break;
                    }
                }
                break;
            }
        }
        bool wasSeat = modelSeat[seat];
        bool hadVoted = modelVoted[id][seat];
        uint256 thresholdBefore = modelThreshold;
        uint256 approvalsBefore = _modelApprovals(id);
        bool expired = id < count && block.timestamp > registry.getProposal(id).deadline;

        vm.prank(seat);
        try registry.vote(id) returns (bool executed) {
            if (!wasSeat) ghost_nonSeatActions++;
            if (hadVoted) ghost_doubleVotes++;
            if (expired) ghost_votesAfterDeadline++;
            modelVoted[id][seat] = true;
            _afterApproval(id, executed, approvalsBefore + 1, thresholdBefore);
        } catch {}
    }

    /// @notice Time passes (proposals expire after the voting period).
    function warp(uint32 secondsSeed) external {
        calls[this.warp.selector]++;
        vm.warp(block.timestamp + bound(secondsSeed, 1, 3 days));
    }

    /// @notice A member (or anyone) binds a relayer key.
    function setRelayer(uint8 memberSeed, uint8 keySeed) external {
        calls[this.setRelayer.selector]++;
        address member = memberCandidates[memberSeed % memberCandidates.length];
        address key = keyCandidates[keySeed % keyCandidates.length];
        vm.prank(member);
        try registry.setRelayer(key) {
            ghost_keyBindings++;
        } catch {}
    }

    /// @notice A member (or anyone) adds a request-signing key.
    function addSigner(uint8 memberSeed, uint8 keySeed) external {
        calls[this.addSigner.selector]++;
        address member = memberCandidates[memberSeed % memberCandidates.length];
        address key = keyCandidates[keySeed % keyCandidates.length];
        vm.prank(member);
        try registry.addSigner(key) {
            ghost_keyBindings++;
        } catch {}
    }

    /// @notice A member (or anyone) removes a request-signing key.
    function removeSigner(uint8 memberSeed, uint8 keySeed) external {
        calls[this.removeSigner.selector]++;
        address member = memberCandidates[memberSeed % memberCandidates.length];
        address key = keyCandidates[keySeed % keyCandidates.length];
        vm.prank(member);
        try registry.removeSigner(key) {} catch {}
    }

    // ---------------------------------------------------------------- model internals

    /// @dev Mostly a current seat (as the model has it), sometimes any candidate or a member.
    function _pickSeat(uint8 seed) internal view returns (address) {
        if (seed % 8 == 0) return memberCandidates[(seed >> 3) % memberCandidates.length];
        if (seed % 8 == 1) return seatCandidates[(seed >> 3) % seatCandidates.length];
        address[15] memory all = _everyone();
        uint256 k = (seed >> 3) % modelSeatCount;
        for (uint256 i = 0; i < all.length; ++i) {
            if (!modelSeat[all[i]]) continue;
            if (k == 0) return all[i];
            --k;
        }
        return seatCandidates[0];
    }

    /// @dev Three times in four a subject the model says fits the action, else any candidate.
    function _subjectFor(IMemberRegistry.Action action, uint8 seed) internal view returns (address) {
        if (seed % 4 == 0) {
            uint256 pick = (seed >> 2) % 15;
            if (pick < 5) return seatCandidates[pick];
            if (pick < 9) return memberCandidates[pick - 5];
            return keyCandidates[pick - 9];
        }
        seed >>= 2;
        if (action == IMemberRegistry.Action.ADD_SEAT || action == IMemberRegistry.Action.REMOVE_SEAT) {
            bool wantSeat = action == IMemberRegistry.Action.REMOVE_SEAT;
            for (uint256 i = 0; i < seatCandidates.length; ++i) {
                address c = seatCandidates[(seed + i) % seatCandidates.length];
                if (modelSeat[c] == wantSeat) return c;
            }
            return seatCandidates[seed % seatCandidates.length];
        }
        MemberStatus wanted = action == IMemberRegistry.Action.ADMIT
            ? MemberStatus.NONE
            : action == IMemberRegistry.Action.SUSPEND ? MemberStatus.ACTIVE : MemberStatus.SUSPENDED;
        for (uint256 i = 0; i < memberCandidates.length; ++i) {
            address c = memberCandidates[(seed + i) % memberCandidates.length];
            if (modelStatus[c] == wanted) return c;
        }
        return memberCandidates[seed % memberCandidates.length];
    }

    /// @dev Every address the handler ever names: any of them may end up holding a seat.
    function _everyone() internal view returns (address[15] memory all) {
        for (uint256 i = 0; i < 5; ++i) {
            all[i] = seatCandidates[i];
        }
        for (uint256 i = 0; i < 4; ++i) {
            all[5 + i] = memberCandidates[i];
        }
        for (uint256 i = 0; i < 6; ++i) {
            all[9 + i] = keyCandidates[i];
        }
    }

    /// @dev Approvals a proposal holds from the model's current seats (each address once).
    function _modelApprovals(uint256 id) internal view returns (uint256 n) {
        address[15] memory all = _everyone();
        for (uint256 i = 0; i < all.length; ++i) {
            bool repeated = false;
            for (uint256 j = 0; j < i; ++j) {
                if (all[j] == all[i]) repeated = true;
            }
            if (!repeated && modelSeat[all[i]] && modelVoted[id][all[i]]) ++n;
        }
    }

    function _afterApproval(uint256 id, bool executed, uint256 approvalsNow, uint256 thresholdBefore) internal {
        // Recount from the model, which knows nothing of the registry's tally.
        approvalsNow = _modelApprovals(id);
        if (executed) {
            ghost_executions++;
            if (approvalsNow < thresholdBefore) ghost_executionsBelowThreshold++;
            modelExecuted[id] = true;
            _apply(registry.getProposal(id));
        } else if (approvalsNow >= thresholdBefore) {
            ghost_missedExecutions++;
        }
    }

    /// @dev The only place the model's seats, threshold and statuses change.
    function _apply(IMemberRegistry.Proposal memory p) internal {
        if (p.action == IMemberRegistry.Action.ADMIT || p.action == IMemberRegistry.Action.REINSTATE) {
            modelStatus[p.subject] = MemberStatus.ACTIVE;
        } else if (p.action == IMemberRegistry.Action.SUSPEND) {
            modelStatus[p.subject] = MemberStatus.SUSPENDED;
        } else if (p.action == IMemberRegistry.Action.ADD_SEAT) {
            modelSeat[p.subject] = true;
            modelSeatCount++;
        } else if (p.action == IMemberRegistry.Action.REMOVE_SEAT) {
            modelSeat[p.subject] = false;
            modelSeatCount--;
            // the registry forgets a removed seat's votes (seating epochs): so does the model
            for (uint256 i = 0; i < modelProposals; ++i) {
                modelVoted[i][p.subject] = false;
            }
        } else {
            modelThreshold = p.value;
        }
    }

    // ---------------------------------------------------------------- checks used by the invariants

    /// @notice Candidates whose registry status differs from the model's.
    function statusMismatches() external view returns (uint256 n) {
        address[15] memory all = _everyone();
        for (uint256 i = 0; i < all.length; ++i) {
            if (registry.getMember(all[i]).status != modelStatus[all[i]]) ++n;
        }
    }

    /// @notice Seat candidates whose seat differs from the model's.
    function seatMismatches() external view returns (uint256 n) {
        address[15] memory all = _everyone();
        for (uint256 i = 0; i < all.length; ++i) {
            if (registry.isSeat(all[i]) != modelSeat[all[i]]) ++n;
        }
        if (registry.seats().length != modelSeatCount) ++n;
    }

    /// @notice Every proposal the registry marks executed was seen executing by the handler.
    function unexplainedExecutions() external view returns (uint256 n) {
        uint256 count = registry.proposalCount();
        for (uint256 i = 0; i < count; ++i) {
            if (registry.getProposal(i).executed != modelExecuted[i]) ++n;
        }
    }

    /// @notice Keys whose binding is inconsistent: a relayer that does not map back to its member,
    /// a bound key that acts for a suspended member, or a key that is also a member's admin.
    function keyInconsistencies() external view returns (uint256 n) {
        address[15] memory all = _everyone();
        for (uint256 i = 0; i < all.length; ++i) {
            address m = all[i];
            IMemberRegistry.Member memory info = registry.getMember(m);
            if (info.relayer != address(0)) {
                (address owner, IMemberRegistry.KeyKind kind) = registry.keyOf(info.relayer);
                if (owner != m || kind != IMemberRegistry.KeyKind.RELAYER) ++n;
            }
            (address sender,) = registry.activeSender(m);
            if ((sender == m) != (info.status == MemberStatus.ACTIVE)) ++n;
        }
        for (uint256 i = 0; i < keyCandidates.length; ++i) {
            address k = keyCandidates[i];
            (address owner, IMemberRegistry.KeyKind kind) = registry.keyOf(k);
            if (kind == IMemberRegistry.KeyKind.NONE) {
                if (owner != address(0)) ++n;
                continue;
            }
            MemberStatus status = registry.getMember(owner).status;
            if (status == MemberStatus.NONE) ++n;
            if (kind == IMemberRegistry.KeyKind.RELAYER && registry.getMember(owner).relayer != k) ++n;
            (address asSender,) = registry.activeSender(k);
            (address asSigner,) = registry.activeSigner(k);
            bool active = status == MemberStatus.ACTIVE;
            if (asSender != (active && kind != IMemberRegistry.KeyKind.SIGNER ? owner : address(0))) ++n;
            if (asSigner != (active && kind != IMemberRegistry.KeyKind.RELAYER ? owner : address(0))) ++n;
        }
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
