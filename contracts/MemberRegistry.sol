// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";
import {Role, MemberStatus} from "./types/Codes.sol";

/// @title CareLedger member registry
/// @notice Council-governed membership of a healthcare cluster.
contract MemberRegistry is IMemberRegistry {
    /// @dev For admin and relayer keys, role and status are copies of the member's, kept in
    /// step by _admit, _setRelayer and _setStatus, so that every contract's "is the sender an
    /// active member" costs one storage read. Signer keys leave them unset (activeSigner is
    /// read off-chain and looks at the member itself).
    struct KeyBinding {
        address member;
        KeyKind kind;
        Role role;
        MemberStatus status;
    }

    uint256 private constant MAX_TEXT = 256;

    mapping(address member => Member) private _members;
    address[] private _memberList;
    /// @dev Every acting address, admins included, so that one read resolves a sender.
    mapping(address key => KeyBinding) private _keys;

    address[] private _seats;
    /// @dev Non-zero while seated: the seating's number, so that votes cast during an earlier
    /// seating of the same address stop counting once it is removed, even if it returns.
    mapping(address account => uint256 seating) private _seating;
    uint256 private _seatings;
    uint256 private _threshold;
    uint256 private immutable _votingPeriod;

    Proposal[] private _proposals;
    mapping(uint256 proposalId => mapping(address seat => uint256 seating)) private _votedIn;

    /// @param seats_ The founding council seats.
    /// @param threshold_ Approvals a proposal needs, 1..seats_.length.
    /// @param votingPeriod_ Seconds a proposal stays open.
    constructor(address[] memory seats_, uint256 threshold_, uint256 votingPeriod_) {
        for (uint256 i = 0; i < seats_.length; ++i) {
            _addSeat(seats_[i]);
        }
        _setThreshold(threshold_);
        _votingPeriod = votingPeriod_;
    }

    modifier onlySeat() {
        if (_seating[msg.sender] == 0) revert MemberRegistryNotCouncil(msg.sender);
        _;
    }

    modifier onlyMember() {
        if (_members[msg.sender].status == MemberStatus.NONE) revert MemberRegistryNotMember(msg.sender);
        _;
    }

    // ---------------------------------------------------------------- proposals

    /// @inheritdoc IMemberRegistry
    function proposeAdmit(address member, Role role, string calldata name, string calldata endpoint)
        external
        onlySeat
        returns (uint256)
    {
        _checkAdmit(member, role, name, endpoint);
        return _propose(Action.ADMIT, member, role, 0, name, endpoint);
    }

    /// @inheritdoc IMemberRegistry
    function proposeSuspend(address member) external onlySeat returns (uint256) {
        _checkStatus(member, MemberStatus.ACTIVE);
        return _propose(Action.SUSPEND, member, Role.NONE, 0, "", "");
    }

    /// @inheritdoc IMemberRegistry
    function proposeReinstate(address member) external onlySeat returns (uint256) {
        _checkStatus(member, MemberStatus.SUSPENDED);
        return _propose(Action.REINSTATE, member, Role.NONE, 0, "", "");
    }

    /// @inheritdoc IMemberRegistry
    function proposeAddSeat(address seat) external onlySeat returns (uint256) {
        _checkAddSeat(seat);
        return _propose(Action.ADD_SEAT, seat, Role.NONE, 0, "", "");
    }

    /// @inheritdoc IMemberRegistry
    function proposeRemoveSeat(address seat) external onlySeat returns (uint256) {
        _checkRemoveSeat(seat);
        return _propose(Action.REMOVE_SEAT, seat, Role.NONE, 0, "", "");
    }

    /// @inheritdoc IMemberRegistry
    function proposeThreshold(uint256 threshold_) external onlySeat returns (uint256) {
        _checkThreshold(threshold_, _seats.length);
        return _propose(Action.SET_THRESHOLD, address(0), Role.NONE, threshold_, "", "");
    }

    /// @inheritdoc IMemberRegistry
    function vote(uint256 proposalId) external onlySeat returns (bool) {
        return _vote(proposalId, msg.sender);
    }

    // ---------------------------------------------------------------- member self-service

    /// @inheritdoc IMemberRegistry
    function setEndpoint(string calldata endpoint) external onlyMember {
        _checkText(endpoint);
        _setEndpoint(msg.sender, endpoint);
    }

    /// @inheritdoc IMemberRegistry
    function setRelayer(address relayer) external onlyMember {
        _checkFreeKey(relayer);
        _setRelayer(msg.sender, relayer);
    }

    /// @inheritdoc IMemberRegistry
    function addSigner(address signer) external onlyMember {
        _checkFreeKey(signer);
        _addSigner(msg.sender, signer);
    }

    /// @inheritdoc IMemberRegistry
    function removeSigner(address signer) external onlyMember {
        KeyBinding memory binding = _keys[signer];
        if (binding.member != msg.sender || binding.kind != KeyKind.SIGNER) {
            revert MemberRegistryUnknownKey(signer);
        }
        _removeSigner(msg.sender, signer);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IMemberRegistry
    function activeSender(address account) external view returns (address member, Role role) {
        KeyBinding memory binding = _keys[account];
        if (
            (binding.kind != KeyKind.ADMIN && binding.kind != KeyKind.RELAYER)
                || binding.status != MemberStatus.ACTIVE
        ) return (address(0), Role.NONE);
        return (binding.member, binding.role);
    }

    /// @inheritdoc IMemberRegistry
    function activeSigner(address account) external view returns (address member, Role role) {
        KeyBinding memory binding = _keys[account];
        if (binding.kind != KeyKind.ADMIN && binding.kind != KeyKind.SIGNER) return (address(0), Role.NONE);
        Member storage m = _members[binding.member];
        if (m.status != MemberStatus.ACTIVE) return (address(0), Role.NONE);
        return (binding.member, m.role);
    }

    /// @inheritdoc IMemberRegistry
    function keyOf(address account) public view returns (address member, KeyKind kind) {
        KeyBinding memory binding = _keys[account];
        return (binding.member, binding.kind);
    }

    /// @inheritdoc IMemberRegistry
    function getMember(address member) external view returns (Member memory) {
        return _members[member];
    }

    /// @inheritdoc IMemberRegistry
    function memberCount() external view returns (uint256) {
        return _memberList.length;
    }

    /// @inheritdoc IMemberRegistry
    function memberAt(uint256 index) external view returns (address) {
        return _memberList[index];
    }

    /// @inheritdoc IMemberRegistry
    function allowlist() external view returns (address[] memory accounts) {
        accounts = new address[](_memberList.length * 2 + _seats.length);
        uint256 n = 0;
        for (uint256 i = 0; i < _seats.length; ++i) {
            accounts[n++] = _seats[i];
        }
        for (uint256 i = 0; i < _memberList.length; ++i) {
            address member = _memberList[i];
            Member storage m = _members[member];
            if (m.status != MemberStatus.ACTIVE) continue;
            if (_seating[member] == 0) accounts[n++] = member;
            // A relayer key may also hold a seat; list it once (Besu refuses duplicate accounts).
            if (m.relayer != address(0) && _seating[m.relayer] == 0) accounts[n++] = m.relayer;
        }
        assembly ("memory-safe") {
            mstore(accounts, n)
        }
    }

    /// @inheritdoc IMemberRegistry
    function isSeat(address account) external view returns (bool) {
        return _seating[account] != 0;
    }

    /// @inheritdoc IMemberRegistry
    function seats() external view returns (address[] memory) {
        return _seats;
    }

    /// @inheritdoc IMemberRegistry
    function threshold() external view returns (uint256) {
        return _threshold;
    }

    /// @inheritdoc IMemberRegistry
    function votingPeriod() external view returns (uint256) {
        return _votingPeriod;
    }

    /// @inheritdoc IMemberRegistry
    function getProposal(uint256 proposalId) external view returns (Proposal memory) {
        return _proposal(proposalId);
    }

    /// @inheritdoc IMemberRegistry
    function proposalCount() external view returns (uint256) {
        return _proposals.length;
    }

    /// @inheritdoc IMemberRegistry
    function approvals(uint256 proposalId) public view returns (uint256 count) {
        for (uint256 i = 0; i < _seats.length; ++i) {
            address seat = _seats[i];
            if (_votedIn[proposalId][seat] == _seating[seat]) ++count;
        }
    }

    /// @inheritdoc IMemberRegistry
    function hasVoted(uint256 proposalId, address seat) external view returns (bool) {
        uint256 seating = _seating[seat];
        return seating != 0 && _votedIn[proposalId][seat] == seating;
    }

    // ---------------------------------------------------------------- internals

    function _proposal(uint256 proposalId) private view returns (Proposal storage) {
        if (proposalId >= _proposals.length) revert MemberRegistryUnknownProposal(proposalId);
        return _proposals[proposalId];
    }

    function _propose(
        Action action,
        address subject,
        Role role,
        uint256 value,
        string memory name,
        string memory endpoint
    ) private returns (uint256 proposalId) {
        proposalId = _proposals.length;
        uint64 deadline = uint64(block.timestamp + _votingPeriod);
        _proposals.push(
            Proposal({
                action: action,
                role: role,
                executed: false,
                deadline: deadline,
                proposer: msg.sender,
                subject: subject,
                value: value,
                name: name,
                endpoint: endpoint
            })
        );
        emit ProposalCreated(proposalId, msg.sender, action, subject, role, value, name, endpoint, deadline);
        _vote(proposalId, msg.sender);
    }

    function _vote(uint256 proposalId, address seat) private returns (bool) {
        Proposal storage p = _proposal(proposalId);
        if (p.executed) revert MemberRegistryProposalExecuted(proposalId);
        if (block.timestamp > p.deadline) revert MemberRegistryProposalExpired(proposalId, p.deadline);
        uint256 seating = _seating[seat];
        if (_votedIn[proposalId][seat] == seating) revert MemberRegistryAlreadyVoted(proposalId, seat);
        _votedIn[proposalId][seat] = seating;
        // Counted over the current seats, so a removed seat's earlier approval no longer counts.
        uint256 count = approvals(proposalId);
        emit ProposalVoted(proposalId, seat, count, _threshold);
        if (count < _threshold) return false;
        _execute(proposalId, p);
        return true;
    }

    function _execute(uint256 proposalId, Proposal storage p) private {
        p.executed = true;
        Action action = p.action;
        address subject = p.subject;
        // Re-checked here: the registry may have changed since the proposal was made.
        if (action == Action.ADMIT) {
            _checkAdmit(subject, p.role, p.name, p.endpoint);
            _admit(subject, p.role, p.name, p.endpoint);
        } else if (action == Action.SUSPEND) {
            _checkStatus(subject, MemberStatus.ACTIVE);
            _setStatus(subject, MemberStatus.SUSPENDED);
        } else if (action == Action.REINSTATE) {
            _checkStatus(subject, MemberStatus.SUSPENDED);
            _setStatus(subject, MemberStatus.ACTIVE);
        } else if (action == Action.ADD_SEAT) {
            _checkAddSeat(subject);
            _addSeat(subject);
        } else if (action == Action.REMOVE_SEAT) {
            _checkRemoveSeat(subject);
            _removeSeat(subject);
        } else {
            _checkThreshold(p.value, _seats.length);
            _setThreshold(p.value);
        }
        emit ProposalExecuted(proposalId, action, subject);
    }

    function _checkAdmit(address member, Role role, string memory name, string memory endpoint) private view {
        if (member == address(0)) revert MemberRegistryZeroAddress();
        if (_members[member].status != MemberStatus.NONE) revert MemberRegistryAlreadyMember(member);
        if (_keys[member].kind != KeyKind.NONE) revert MemberRegistryKeyInUse(member);
        if (role == Role.NONE) revert MemberRegistryInvalidRole();
        _checkText(name);
        // Only custodians serve records; other roles may leave the endpoint empty.
        if (role == Role.CLINIC || bytes(endpoint).length != 0) _checkText(endpoint);
    }

    function _checkStatus(address member, MemberStatus wanted) private view {
        MemberStatus status = _members[member].status;
        if (status == MemberStatus.NONE) revert MemberRegistryNotMember(member);
        if (status != wanted) revert MemberRegistryWrongStatus(member, status);
    }

    function _checkAddSeat(address seat) private view {
        if (seat == address(0)) revert MemberRegistryZeroAddress();
        if (_seating[seat] != 0) revert MemberRegistryAlreadySeated(seat);
    }

    function _checkRemoveSeat(address seat) private view {
        if (_seating[seat] == 0) revert MemberRegistryNotCouncil(seat);
        _checkThreshold(_threshold, _seats.length - 1);
    }

    function _checkThreshold(uint256 threshold_, uint256 seatCount) private pure {
        if (threshold_ == 0 || threshold_ > seatCount) revert MemberRegistryInvalidThreshold(threshold_, seatCount);
    }

    function _checkText(string memory text) private pure {
        uint256 length = bytes(text).length;
        if (length == 0 || length > MAX_TEXT) revert MemberRegistryInvalidText();
    }

    function _checkFreeKey(address key) private view {
        if (key == address(0)) revert MemberRegistryZeroAddress();
        (address owner,) = keyOf(key);
        if (owner != address(0)) revert MemberRegistryKeyInUse(key);
    }

    function _admit(address member, Role role, string memory name, string memory endpoint) private {
        Member storage m = _members[member];
        m.role = role;
        m.status = MemberStatus.ACTIVE;
        m.name = name;
        m.endpoint = endpoint;
        _keys[member] = KeyBinding(member, KeyKind.ADMIN, role, MemberStatus.ACTIVE);
        _memberList.push(member);
        emit MemberAdmitted(member, role, name, endpoint);
    }

    function _setStatus(address member, MemberStatus status) private {
        Member storage m = _members[member];
        m.status = status;
        _keys[member].status = status;
        if (m.relayer != address(0)) _keys[m.relayer].status = status;
        if (status == MemberStatus.SUSPENDED) emit MemberSuspended(member);
        else emit MemberReinstated(member);
    }

    function _setEndpoint(address member, string memory endpoint) private {
        _members[member].endpoint = endpoint;
        emit EndpointChanged(member, endpoint);
    }

    function _setRelayer(address member, address relayer) private {
        Member storage m = _members[member];
        address previous = m.relayer;
        if (previous != address(0)) delete _keys[previous];
        m.relayer = relayer;
        _keys[relayer] = KeyBinding(member, KeyKind.RELAYER, m.role, m.status);
        emit RelayerChanged(member, previous, relayer);
    }

    function _addSigner(address member, address signer) private {
        _keys[signer] = KeyBinding(member, KeyKind.SIGNER, Role.NONE, MemberStatus.NONE);
        emit SignerAdded(member, signer);
    }

    function _removeSigner(address member, address signer) private {
        delete _keys[signer];
        emit SignerRemoved(member, signer);
    }

    function _addSeat(address seat) private {
        if (seat == address(0)) revert MemberRegistryZeroAddress();
        if (_seating[seat] != 0) revert MemberRegistryAlreadySeated(seat);
        _seating[seat] = ++_seatings;
        _seats.push(seat);
        emit SeatAdded(seat);
    }

    function _removeSeat(address seat) private {
        _seating[seat] = 0;
        uint256 last = _seats.length - 1;
        for (uint256 i = 0; i <= last; ++i) {
            if (_seats[i] == seat) {
                _seats[i] = _seats[last];
                _seats.pop();
                break;
            }
        }
        emit SeatRemoved(seat);
    }

    function _setThreshold(uint256 threshold_) private {
        _checkThreshold(threshold_, _seats.length);
        _threshold = threshold_;
        emit ThresholdChanged(threshold_);
    }
}
