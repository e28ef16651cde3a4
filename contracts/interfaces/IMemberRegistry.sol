// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Role, MemberStatus} from "../types/Codes.sol";

/// @title CareLedger member registry
/// @notice Who belongs to the cluster, in which role, where its gateway answers and which
/// operational keys act for it. Admission, suspension, reinstatement and council changes
/// are council proposals executed once a threshold of current council seats approved them.
interface IMemberRegistry {
    /// @notice What a proposal does when it passes.
    enum Action {
        ADMIT,
        SUSPEND,
        REINSTATE,
        ADD_SEAT,
        REMOVE_SEAT,
        SET_THRESHOLD
    }

    /// @notice What an operational key may do for its member.
    enum KeyKind {
        NONE,
        ADMIN,
        RELAYER,
        SIGNER
    }

    /// @notice A member as the registry holds it.
    struct Member {
        Role role;
        MemberStatus status;
        address relayer;
        string name;
        string endpoint;
    }

    /// @notice A council proposal.
    struct Proposal {
        Action action;
        Role role;
        bool executed;
        uint64 deadline;
        address proposer;
        address subject;
        uint256 value;
        string name;
        string endpoint;
    }

    /// @notice Emitted when a council seat proposes an action.
    event ProposalCreated(
        uint256 indexed proposalId,
        address indexed proposer,
        Action action,
        address indexed subject,
        Role role,
        uint256 value,
        string name,
        string endpoint,
        uint64 deadline
    );

    /// @notice Emitted when a council seat approves a proposal (the proposer's approval included).
    event ProposalVoted(uint256 indexed proposalId, address indexed seat, uint256 approvals, uint256 threshold);

    /// @notice Emitted when a proposal reached its threshold and took effect.
    event ProposalExecuted(uint256 indexed proposalId, Action action, address indexed subject);

    /// @notice Emitted when a member is admitted.
    event MemberAdmitted(address indexed member, Role role, string name, string endpoint);

    /// @notice Emitted when a member is suspended; it can no longer anchor, relay or log.
    event MemberSuspended(address indexed member);

    /// @notice Emitted when a suspended member is reinstated.
    event MemberReinstated(address indexed member);

    /// @notice Emitted when a member moves its gateway.
    event EndpointChanged(address indexed member, string endpoint);

    /// @notice Emitted when a member sets or rotates the key its gateway sends transactions with.
    event RelayerChanged(address indexed member, address indexed previousRelayer, address indexed relayer);

    /// @notice Emitted when a member adds a request-signing key.
    event SignerAdded(address indexed member, address indexed signer);

    /// @notice Emitted when a member removes a request-signing key.
    event SignerRemoved(address indexed member, address indexed signer);

    /// @notice Emitted when a council seat is added.
    event SeatAdded(address indexed seat);

    /// @notice Emitted when a council seat is removed.
    event SeatRemoved(address indexed seat);

    /// @notice Emitted when the number of approvals a proposal needs changes.
    event ThresholdChanged(uint256 threshold);

    /// @notice Thrown when the caller holds no council seat.
    error MemberRegistryNotCouncil(address account);
    /// @notice Thrown when the caller is not an admitted member's admin address.
    error MemberRegistryNotMember(address account);
    /// @notice Thrown when an action names an address already admitted.
    error MemberRegistryAlreadyMember(address account);
    /// @notice Thrown when a member is not in the status the action needs.
    error MemberRegistryWrongStatus(address member, MemberStatus status);
    /// @notice Thrown for an admission without a role.
    error MemberRegistryInvalidRole();
    /// @notice Thrown for an empty or overlong name or endpoint.
    error MemberRegistryInvalidText();
    /// @notice Thrown for the zero address where an account is needed.
    error MemberRegistryZeroAddress();
    /// @notice Thrown when a key already acts for a member, or is a member's admin address.
    error MemberRegistryKeyInUse(address key);
    /// @notice Thrown when a key does not act for the calling member as needed.
    error MemberRegistryUnknownKey(address key);
    /// @notice Thrown for a proposal id that does not exist.
    error MemberRegistryUnknownProposal(uint256 proposalId);
    /// @notice Thrown when voting on a proposal that already took effect.
    error MemberRegistryProposalExecuted(uint256 proposalId);
    /// @notice Thrown when voting on a proposal after its deadline.
    error MemberRegistryProposalExpired(uint256 proposalId, uint64 deadline);
    /// @notice Thrown when a seat votes twice on one proposal.
    error MemberRegistryAlreadyVoted(uint256 proposalId, address seat);
    /// @notice Thrown when adding a seat that exists.
    error MemberRegistryAlreadySeated(address account);
    /// @notice Thrown for a threshold of zero or above the number of seats.
    error MemberRegistryInvalidThreshold(uint256 threshold, uint256 seats);

    /// @notice Proposes admitting `member` with a role, display name and gateway endpoint.
    /// @return proposalId The new proposal; the proposer's approval is counted at once.
    function proposeAdmit(address member, Role role, string calldata name, string calldata endpoint)
        external
        returns (uint256 proposalId);

    /// @notice Proposes suspending an active member.
    function proposeSuspend(address member) external returns (uint256 proposalId);

    /// @notice Proposes reinstating a suspended member.
    function proposeReinstate(address member) external returns (uint256 proposalId);

    /// @notice Proposes adding a council seat.
    function proposeAddSeat(address seat) external returns (uint256 proposalId);

    /// @notice Proposes removing a council seat; refused if it would leave fewer seats than the threshold.
    function proposeRemoveSeat(address seat) external returns (uint256 proposalId);

    /// @notice Proposes a new approval threshold.
    function proposeThreshold(uint256 threshold) external returns (uint256 proposalId);

    /// @notice Approves a proposal; executes it when approvals by current seats reach the threshold.
    /// @return executed Whether this vote made the proposal take effect.
    function vote(uint256 proposalId) external returns (bool executed);

    /// @notice Moves the caller's gateway to `endpoint` (caller: the member's admin address).
    function setEndpoint(string calldata endpoint) external;

    /// @notice Sets or rotates the key the caller's gateway sends transactions with.
    function setRelayer(address relayer) external;

    /// @notice Adds a key that signs HTTP requests for the caller.
    function addSigner(address signer) external;

    /// @notice Removes one of the caller's request-signing keys.
    function removeSigner(address signer) external;

    /// @notice The member a transaction sender acts for, if that member is active.
    /// @dev Admin address or relayer key; anything else, or a suspended member, gives (0, NONE).
    function activeSender(address account) external view returns (address member, Role role);

    /// @notice The member a request-signing key acts for, if that member is active.
    /// @dev Admin address or signer key; anything else, or a suspended member, gives (0, NONE).
    function activeSigner(address account) external view returns (address member, Role role);

    /// @notice The member an address acts for and how, whatever the member's status.
    function keyOf(address account) external view returns (address member, KeyKind kind);

    /// @notice A member's record (all fields zero for an address never admitted).
    function getMember(address member) external view returns (Member memory);

    /// @notice Number of members ever admitted.
    function memberCount() external view returns (uint256);

    /// @notice The member admitted `index`-th (0-based).
    function memberAt(uint256 index) external view returns (address);

    /// @notice Every address allowed to send transactions now: active members' admin and relayer keys
    /// and the council seats. A Besu network mirrors this into its validators' account allowlists.
    function allowlist() external view returns (address[] memory accounts);

    /// @notice Whether `account` holds a council seat.
    function isSeat(address account) external view returns (bool);

    /// @notice The council seats.
    function seats() external view returns (address[] memory);

    /// @notice Approvals a proposal needs.
    function threshold() external view returns (uint256);

    /// @notice How long a proposal stays open, in seconds.
    function votingPeriod() external view returns (uint256);

    /// @notice A proposal.
    function getProposal(uint256 proposalId) external view returns (Proposal memory);

    /// @notice Number of proposals ever made.
    function proposalCount() external view returns (uint256);

    /// @notice Approvals by current seats that a proposal holds.
    function approvals(uint256 proposalId) external view returns (uint256);

    /// @notice Whether `seat` approved a proposal.
    function hasVoted(uint256 proposalId, address seat) external view returns (bool);
}
