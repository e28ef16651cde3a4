// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {CareLedgerBase} from "../../utils/CareLedgerBase.sol";
import {Eip712} from "../../utils/Eip712.sol";
import {MerkleBuilder} from "../../utils/MerkleBuilder.sol";
import {MemberRegistry} from "../../../../contracts/MemberRegistry.sol";
import {ConsentRegistry} from "../../../../contracts/ConsentRegistry.sol";
import {RecordRegistry} from "../../../../contracts/RecordRegistry.sol";
import {AccessLog} from "../../../../contracts/AccessLog.sol";
import {IConsentRegistry} from "../../../../contracts/interfaces/IConsentRegistry.sol";
import {IRecordRegistry} from "../../../../contracts/interfaces/IRecordRegistry.sol";
import {IAccessLog} from "../../../../contracts/interfaces/IAccessLog.sol";
import {ConsentId, RecordId} from "../../../../contracts/types/Ids.sol";
import {Category, Purpose, Role} from "../../../../contracts/types/Codes.sol";

/// @title Drives consents, enrollments, anchors, erasures and the access log with random actors
/// @notice Senders include active members' admin and relayer keys, signing keys, outsiders and
/// members the handler suspends through the council; messages are signed by the patient or by
/// someone else, with live or past deadlines, fresh or reused nonces, and are replayed. Every
/// call that succeeds is checked against the handler's own model (who acts for whom, who is
/// suspended, which nonces and digests were used, who is enrolled), and ghost counters record
/// any success the rules forbid; the invariants require those counters to stay zero.
contract CareLedgerHandler is CareLedgerBase {
    struct Actors {
        address seatA;
        address seatB;
        address clinicA;
        address clinicARelayer;
        address clinicB;
        address clinicBRelayer;
        address insurer;
        address insurerSigner;
        address research;
        address auditor;
        address outsider;
    }

    struct GhostConsent {
        address patient;
        address grantee;
        uint256 index;
        uint16 categories;
        uint8 purposes;
        uint40 validFrom;
        uint40 validUntil;
        bool revoked;
    }

    struct SignedRevocation {
        IConsentRegistry.Revocation revocation;
        address grantee;
        uint256 index;
        bytes signature;
        bool byPatient;
    }

    struct SignedErasure {
        IRecordRegistry.Erasure erasure;
        uint256 record;
        bytes signature;
        bool byPatient;
    }

    uint256 internal constant NONCE_SPACE = 48;
    uint256 internal constant MAX_GHOSTS = 200;
    uint256 internal immutable MAX_CHECK_LAG;

    Actors internal a;
    address[10] internal senders;
    address[5] internal memberList;
    address[4] internal grantees;
    address[4] internal patients;
    uint256[4] internal patientKeys;
    uint256 internal strangerKey;
    mapping(address sender => address member) internal actsFor;
    mapping(address member => Role) internal roleOf;

    // ---------------------------------------------------------------- model
    mapping(address member => bool) public modelSuspended;
    GhostConsent[] internal ghostConsents;
    mapping(address patient => mapping(address grantee => uint256)) public ghostPairCount;
    mapping(address verifier => mapping(address patient => mapping(uint256 nonce => bool))) internal ghostNonceUsed;
    mapping(bytes32 digest => bool) internal ghostDigestUsed;
    mapping(address patient => mapping(address custodian => bool)) public ghostEnrolled;
    IRecordRegistry.AnchoredRecord[] internal ghostRecords;
    uint256[] internal ghostRecordPosition;
    bytes32[][] internal ghostBatchLeaves;
    mapping(RecordId id => bool) internal ghostErasedByPatient;
    uint256 public ghostLogEntries;
    uint256 internal commitmentCounter;

    // signed messages kept for replays
    IConsentRegistry.Grant[] internal signedGrants;
    bytes[] internal grantSignatures;
    bool[] internal grantByPatient;
    SignedRevocation[] internal signedRevocations;
    IRecordRegistry.Enrollment[] internal signedEnrollments;
    bytes[] internal enrollmentSignatures;
    bool[] internal enrollmentByPatient;
    SignedErasure[] internal signedErasures;

    // ---------------------------------------------------------------- ghost counters (must stay zero)
    uint256 public ghost_inactiveSenderActed;
    uint256 public ghost_suspendedMemberActed;
    uint256 public ghost_nonClinicActed;
    uint256 public ghost_wrongCustodianEnrolled;
    uint256 public ghost_messageUsedTwice;
    uint256 public ghost_messageUsedAfterDeadline;
    uint256 public ghost_forgedSignatureAccepted;
    uint256 public ghost_revokedTwice;
    uint256 public ghost_anchoredForUnenrolled;
    uint256 public ghost_erasedWithoutPatient;
    uint256 public ghost_invalidEntryLogged;

    // ---------------------------------------------------------------- coverage counters
    uint256 public grants;
    uint256 public revocations;
    uint256 public enrollments;
    uint256 public anchors;
    uint256 public erasures;
    uint256 public logBatches;
    uint256 public replaysRefused;
    uint256 public suspensions;

    constructor(
        MemberRegistry registry_,
        ConsentRegistry consents_,
        RecordRegistry records_,
        AccessLog accessLog_,
        Actors memory actors,
        address[4] memory patients_,
        uint256[4] memory patientKeys_
    ) {
        registry = registry_;
        consents = consents_;
        records = records_;
        accessLog = accessLog_;
        MAX_CHECK_LAG = accessLog_.maxCheckLag();
        a = actors;
        patients = patients_;
        patientKeys = patientKeys_;
        strangerKey = uint256(keccak256("a stranger's key"));
        senders = [
            actors.clinicA,
            actors.clinicARelayer,
            actors.clinicB,
            actors.clinicBRelayer,
            actors.insurer,
            actors.insurerSigner,
            actors.research,
            actors.auditor,
            actors.outsider,
            patients_[0]
        ];
        memberList = [actors.clinicA, actors.clinicB, actors.insurer, actors.research, actors.auditor];
        grantees = [actors.insurer, actors.research, actors.clinicB, actors.outsider];
        // Who may send transactions for whom, as the fixture set it up (signing keys may not).
        actsFor[actors.clinicA] = actors.clinicA;
        actsFor[actors.clinicARelayer] = actors.clinicA;
        actsFor[actors.clinicB] = actors.clinicB;
        actsFor[actors.clinicBRelayer] = actors.clinicB;
        actsFor[actors.insurer] = actors.insurer;
        actsFor[actors.research] = actors.research;
        actsFor[actors.auditor] = actors.auditor;
        roleOf[actors.clinicA] = Role.CLINIC;
        roleOf[actors.clinicB] = Role.CLINIC;
        roleOf[actors.insurer] = Role.INSURER;
        roleOf[actors.research] = Role.RESEARCH;
        roleOf[actors.auditor] = Role.AUDITOR;
    }

    // ================================================================== actions: consents

    /// @dev Flags pick at most one fault, so most messages are valid and feed the other actions:
    /// 0-9 honest, 10 signed by a stranger, 11 deadline passed, 12 bad categories, 13 bad purposes,
    /// 14 empty or past window, 15 honest.
    function grant(uint8 senderSeed, uint8 patientSeed, uint8 granteeSeed, uint256 entropy, uint8 flags) external {
        uint8 fault = flags % 16;
        uint256 p = patientSeed % patients.length;
        IConsentRegistry.Grant memory g =
            _buildGrant(patients[p], grantees[granteeSeed % grantees.length], entropy, fault);
        bool byPatient = fault != 10;
        bytes memory sig = _sign(byPatient ? patientKeys[p] : strangerKey, Eip712.grantDigest(address(consents), g));
        signedGrants.push(g);
        grantSignatures.push(sig);
        grantByPatient.push(byPatient);
        _submitGrant(g, sig, byPatient, _sender(senderSeed, false));
    }

    function _buildGrant(address patient, address grantee, uint256 entropy, uint8 fault)
        internal
        view
        returns (IConsentRegistry.Grant memory g)
    {
        g.patient = patient;
        g.grantee = grantee;
        uint16 categories = uint16(entropy);
        uint8 purposes = uint8(entropy >> 16);
        g.categories =
            fault == 12 ? (categories & 1 == 0 ? 0 : categories | 0x800) : uint16(1 + categories % Category.ALL);
        g.purposes = fault == 13 ? (purposes & 1 == 0 ? 0 : purposes | 0x80) : uint8(1 + purposes % Purpose.GRANTABLE);
        g.validFrom = uint40(block.timestamp - 1 days + uint32(entropy >> 24) % 3 days);
        uint256 length = uint32(entropy >> 56);
        g.validUntil = fault == 14
            ? uint40(block.timestamp - length % 1 days)
            : uint40(uint256(g.validFrom) + 1 days + 1 + length % 3 days);
        g.nonce = (entropy >> 88) % NONCE_SPACE;
        g.deadline = fault == 11 ? block.timestamp - 1 : block.timestamp + 1 hours;
    }

    /// @dev Faults: 10 stranger's signature, 11 deadline passed, 12 wrong index.
    function revoke(uint8 senderSeed, uint256 consentSeed, uint8 nonceSeed, uint8 flags) external {
        if (ghostConsents.length == 0) return;
        flags %= 16;
        GhostConsent memory c = ghostConsents[consentSeed % ghostConsents.length];
        uint256 p = _patientIndex(c.patient);
        IConsentRegistry.Revocation memory r = IConsentRegistry.Revocation({
            patient: c.patient,
            consentId: ConsentId.wrap(keccak256(abi.encode(c.patient, c.grantee, c.index))),
            nonce: nonceSeed % NONCE_SPACE,
            deadline: flags == 11 ? block.timestamp - 1 : block.timestamp + 1 hours
        });
        bool byPatient = flags != 10;
        uint256 index = flags == 12 ? c.index + 1 : c.index;
        bytes memory sig =
            _sign(byPatient ? patientKeys[p] : strangerKey, Eip712.revocationDigest(address(consents), r));
        SignedRevocation memory s =
            SignedRevocation({revocation: r, grantee: c.grantee, index: index, signature: sig, byPatient: byPatient});
        signedRevocations.push(s);
        _submitRevocation(s, _sender(senderSeed, false));
    }

    // ================================================================== actions: records

    /// @dev Faults: 10 stranger's signature, 11 deadline passed, 12 zero commitment, 13 another custodian.
    function enroll(uint8 senderSeed, uint8 patientSeed, uint8 custodianSeed, uint8 nonceSeed, uint8 flags) external {
        flags %= 16;
        uint256 p = patientSeed % patients.length;
        address sender = _sender(senderSeed, true);
        address custodian =
            roleOf[actsFor[sender]] == Role.CLINIC ? actsFor[sender] : (custodianSeed % 2 == 0 ? a.clinicA : a.clinicB);
        if (flags == 13) custodian = custodian == a.clinicA ? a.clinicB : a.clinicA;
        IRecordRegistry.Enrollment memory e = IRecordRegistry.Enrollment({
            patient: patients[p],
            custodian: custodian,
            referenceCommitment: flags == 12 ? bytes32(0) : keccak256(abi.encode("salted reference", p, custodianSeed)),
            nonce: nonceSeed % NONCE_SPACE,
            deadline: flags == 11 ? block.timestamp - 1 : block.timestamp + 1 hours
        });
        bool byPatient = flags != 10;
        bytes memory sig = _sign(byPatient ? patientKeys[p] : strangerKey, Eip712.enrollmentDigest(address(records), e));
        signedEnrollments.push(e);
        enrollmentSignatures.push(sig);
        enrollmentByPatient.push(byPatient);
        _submitEnrollment(e, sig, byPatient, sender);
    }

    /// @dev Mostly patients the model has enrolled at the sender's custodian; one time in eight
    /// whatever patients the mask names.
    function anchor(uint8 senderSeed, uint8 patientMask, uint8 countSeed, uint8 categorySeed) external {
        if (ghostRecords.length >= MAX_GHOSTS) return;
        address sender = _sender(senderSeed, true);
        address custodian = actsFor[sender] == address(0) ? a.clinicA : actsFor[sender];
        uint256 mask = 1 + patientMask % 15;
        if (countSeed % 8 != 0) {
            uint256 enrolledMask = 0;
            for (uint256 i = 0; i < patients.length; ++i) {
                if (ghostEnrolled[patients[i]][custodian]) enrolledMask |= 1 << i;
            }
            if (enrolledMask != 0) mask = (mask & enrolledMask) == 0 ? enrolledMask : mask & enrolledMask;
        }
        uint256 groups = 0;
        for (uint256 i = 0; i < patients.length; ++i) {
            if ((mask >> i) & 1 == 1) ++groups;
        }
        IRecordRegistry.PatientRecords[] memory batch = new IRecordRegistry.PatientRecords[](groups);
        uint256 g = 0;
        for (uint256 i = 0; i < patients.length; ++i) {
            if ((mask >> i) & 1 == 0) continue;
            uint256 n = 1 + (uint256(countSeed) >> (2 * g)) % 4;
            IRecordRegistry.RecordEntry[] memory list = new IRecordRegistry.RecordEntry[](n);
            for (uint256 k = 0; k < n; ++k) {
                // Fresh commitments: a custodian never re-anchors one (see RecordRegistry.t.sol's BUG test).
                list[k] = IRecordRegistry.RecordEntry({
                    category: uint8((categorySeed + k) % Category.COUNT),
                    commitment: keccak256(abi.encode("commitment", ++commitmentCounter)),
                    supersedes: RecordId.wrap(0)
                });
            }
            batch[g++] = IRecordRegistry.PatientRecords({patient: patients[i], records: list});
        }
        _submitAnchor(batch, custodian, sender);
    }

    function _submitAnchor(IRecordRegistry.PatientRecords[] memory batch, address custodian, address sender) internal {
        vm.prank(sender);
        try records.anchor(batch) returns (uint256 batchId) {
            anchors++;
            _checkSender(sender, true);
            for (uint256 i = 0; i < batch.length; ++i) {
                if (!ghostEnrolled[batch[i].patient][custodian]) ghost_anchoredForUnenrolled++;
            }
            IRecordRegistry.AnchoredRecord[] memory flat = _anchoredRecords(batchId, custodian, batch);
            bytes32[] memory leaves = _leavesOf(flat);
            require(records.batchRoot(batchId) == MerkleBuilder.root(leaves), "handler: root differs from the tree");
            require(batchId == ghostBatchLeaves.length, "handler: batch ids out of order");
            ghostBatchLeaves.push(leaves);
            for (uint256 i = 0; i < flat.length; ++i) {
                ghostRecords.push(flat[i]);
                ghostRecordPosition.push(i);
            }
        } catch {}
    }

    /// @dev Faults: 10 stranger's signature, 11 deadline passed, 12 another patient claims the
    /// record, 13 wrong batch.
    function erase(uint8 senderSeed, uint256 recordSeed, uint8 nonceSeed, uint8 flags) external {
        if (ghostRecords.length == 0) return;
        flags %= 16;
        uint256 k = recordSeed % ghostRecords.length;
        IRecordRegistry.AnchoredRecord memory rec = ghostRecords[k];
        uint256 p = _patientIndex(rec.patient);
        IRecordRegistry.Erasure memory e = IRecordRegistry.Erasure({
            patient: rec.patient,
            recordId: rec.recordId,
            nonce: nonceSeed % NONCE_SPACE,
            deadline: flags == 11 ? block.timestamp - 1 : block.timestamp + 1 hours
        });
        bool byPatient = flags != 10;
        if (flags == 12) {
            // Another patient signs for itself, claiming the record.
            p = (p + 1) % patients.length;
            e.patient = patients[p];
        }
        bytes memory sig = _sign(byPatient ? patientKeys[p] : strangerKey, Eip712.erasureDigest(address(records), e));
        SignedErasure memory s = SignedErasure({erasure: e, record: k, signature: sig, byPatient: byPatient});
        signedErasures.push(s);
        _submitErasure(s, flags == 13, _sender(senderSeed, false));
    }

    // ================================================================== actions: access log

    /// @dev One batch in four carries one odd entry: a late check (valid: recorded, audits flag
    /// it), or a faulty one (future check, purpose against the break-glass rule, no consent id,
    /// no signature).
    function logAccess(uint8 senderSeed, uint8 countSeed, uint256 entropy) external {
        address sender = _sender(senderSeed, true);
        uint256 n = 1 + countSeed % 5;
        IAccessLog.Disclosure[] memory list = new IAccessLog.Disclosure[](n);
        uint256 faulty = entropy % 4 == 0 ? (entropy >> 8) % n : type(uint256).max;
        bool allValid = true;
        for (uint256 i = 0; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(entropy, i)));
            uint64 checked = uint64(block.number - r % (MAX_CHECK_LAG + 1));
            bool breakGlass = (r >> 16) % 4 == 0;
            uint8 purpose = breakGlass ? ((r >> 8) % 2 == 0 ? Purpose.ETREAT : Purpose.BTG) : uint8((r >> 8) % 7);
            bytes32 basis = keccak256(abi.encode(r));
            bytes32 sigR;
            if (i == faulty) {
                uint256 kind = (r >> 24) % 5;
                if (kind == 0) checked = uint64(block.number - MAX_CHECK_LAG - 1 - (r >> 32) % 50);
                if (kind == 1) checked = uint64(block.number + 1);
                if (kind == 2) purpose = breakGlass ? Purpose.TREAT : Purpose.BTG;
                if (kind == 3) (breakGlass, basis) = (false, bytes32(0));
                if (kind == 4) sigR = bytes32(0);
            }
            IAccessLog.Disclosure memory d =
                _disclosure(RecordId.wrap(bytes32(r)), patientKeys[i % 4], purpose, ConsentId.wrap(basis));
            d.meta = _meta(vm.addr(patientKeys[i % 4]), checked, purpose, breakGlass);
            if (i == faulty && (r >> 24) % 5 == 4) d.sigR = sigR;
            bool fresh = checked <= block.number; // a late check is recorded; a future one is not
            bool rule = breakGlass
                ? (purpose == Purpose.ETREAT || purpose == Purpose.BTG)
                : (purpose < Purpose.BTG && d.basis != bytes32(0));
            allValid = allValid && fresh && rule && d.sigR != bytes32(0);
            list[i] = d;
        }
        vm.prank(sender);
        try accessLog.log(list) {
            logBatches++;
            _checkSender(sender, true);
            if (!allValid) ghost_invalidEntryLogged++;
            ghostLogEntries += n;
        } catch {}
    }

    // ================================================================== actions: replays, council, time

    /// @notice Submits an earlier signed message again, exactly as signed, through any sender.
    function replay(uint8 kind, uint256 indexSeed, uint8 senderSeed) external {
        address sender = _sender(senderSeed, kind % 4 == 2);
        kind %= 4;
        bool ok;
        if (kind == 0 && signedGrants.length != 0) {
            uint256 i = indexSeed % signedGrants.length;
            ok = _submitGrant(signedGrants[i], grantSignatures[i], grantByPatient[i], sender);
        } else if (kind == 1 && signedRevocations.length != 0) {
            ok = _submitRevocation(signedRevocations[indexSeed % signedRevocations.length], sender);
        } else if (kind == 2 && signedEnrollments.length != 0) {
            uint256 i = indexSeed % signedEnrollments.length;
            ok = _submitEnrollment(signedEnrollments[i], enrollmentSignatures[i], enrollmentByPatient[i], sender);
        } else if (kind == 3 && signedErasures.length != 0) {
            ok = _submitErasure(signedErasures[indexSeed % signedErasures.length], false, sender);
        } else {
            return;
        }
        if (!ok) replaysRefused++;
    }

    /// @notice The council suspends a member, or reinstates the one it suspended before (at
    /// most one member is suspended at a time, so the others keep the system moving).
    function toggleSuspension(uint8 memberSeed) external {
        address member = memberList[memberSeed % memberList.length];
        for (uint256 i = 0; i < memberList.length; ++i) {
            if (modelSuspended[memberList[i]]) member = memberList[i];
        }
        bool suspend = !modelSuspended[member];
        vm.prank(a.seatA);
        uint256 id = suspend ? registry.proposeSuspend(member) : registry.proposeReinstate(member);
        vm.prank(a.seatB);
        require(registry.vote(id), "handler: council vote did not execute");
        modelSuspended[member] = suspend;
        suspensions++;
    }

    /// @notice Time and blocks pass: consents start and lapse, deadlines pass, checks go stale.
    function advance(uint32 secondsSeed, uint16 blocksSeed) external {
        vm.warp(block.timestamp + secondsSeed % 2 days);
        vm.roll(block.number + blocksSeed % 100);
    }

    // ================================================================== submissions and bookkeeping

    function _submitGrant(IConsentRegistry.Grant memory g, bytes memory sig, bool byPatient, address sender)
        internal
        returns (bool)
    {
        vm.prank(sender);
        try consents.grantBySig(g, sig) returns (ConsentId id) {
            grants++;
            _checkSender(sender, false);
            _checkSigned(address(consents), g.patient, g.nonce, g.deadline, Eip712.grantDigest(address(consents), g));
            if (!byPatient) ghost_forgedSignatureAccepted++;
            uint256 index = ghostPairCount[g.patient][g.grantee]++;
            require(
                ConsentId.unwrap(id) == keccak256(abi.encode(g.patient, g.grantee, index)), "handler: unexpected id"
            );
            if (ghostConsents.length < MAX_GHOSTS) {
                ghostConsents.push(
                    GhostConsent({
                        patient: g.patient,
                        grantee: g.grantee,
                        index: index,
                        categories: g.categories,
                        purposes: g.purposes,
                        validFrom: g.validFrom,
                        validUntil: g.validUntil,
                        revoked: false
                    })
                );
            }
            return true;
        } catch {
            return false;
        }
    }

    function _submitRevocation(SignedRevocation memory s, address sender) internal returns (bool) {
        vm.prank(sender);
        try consents.revokeBySig(s.revocation, s.grantee, s.index, s.signature) {
            revocations++;
            _checkSender(sender, false);
            _checkSigned(
                address(consents),
                s.revocation.patient,
                s.revocation.nonce,
                s.revocation.deadline,
                Eip712.revocationDigest(address(consents), s.revocation)
            );
            if (!s.byPatient) ghost_forgedSignatureAccepted++;
            bool found;
            for (uint256 i = 0; i < ghostConsents.length; ++i) {
                GhostConsent storage c = ghostConsents[i];
                if (c.patient == s.revocation.patient && c.grantee == s.grantee && c.index == s.index) {
                    if (c.revoked) ghost_revokedTwice++;
                    c.revoked = true;
                    found = true;
                }
            }
            require(found, "handler: revoked a consent it never granted");
            return true;
        } catch {
            return false;
        }
    }

    function _submitEnrollment(IRecordRegistry.Enrollment memory e, bytes memory sig, bool byPatient, address sender)
        internal
        returns (bool)
    {
        vm.prank(sender);
        try records.enrollBySig(e, sig) {
            enrollments++;
            _checkSender(sender, true);
            if (actsFor[sender] != e.custodian) ghost_wrongCustodianEnrolled++;
            _checkSigned(address(records), e.patient, e.nonce, e.deadline, Eip712.enrollmentDigest(address(records), e));
            if (!byPatient) ghost_forgedSignatureAccepted++;
            ghostEnrolled[e.patient][e.custodian] = true;
            return true;
        } catch {
            return false;
        }
    }

    function _submitErasure(SignedErasure memory s, bool wrongBatch, address sender) internal returns (bool) {
        IRecordRegistry.AnchoredRecord memory rec = ghostRecords[s.record];
        bytes32[] memory proof = MerkleBuilder.proof(ghostBatchLeaves[rec.batchId], ghostRecordPosition[s.record]);
        if (s.erasure.patient != rec.patient) rec.patient = s.erasure.patient;
        if (wrongBatch) rec.batchId = (rec.batchId + 1) % (ghostBatchLeaves.length + 1);
        vm.prank(sender);
        try records.eraseBySig(s.erasure, rec, proof, s.signature) {
            erasures++;
            _checkSender(sender, false);
            _checkSigned(
                address(records),
                s.erasure.patient,
                s.erasure.nonce,
                s.erasure.deadline,
                Eip712.erasureDigest(address(records), s.erasure)
            );
            IRecordRegistry.AnchoredRecord memory anchored = ghostRecords[s.record];
            // Erased only with the signature of the patient the record was anchored for.
            if (!s.byPatient || s.erasure.patient != anchored.patient) ghost_erasedWithoutPatient++;
            if (ghostErasedByPatient[anchored.recordId]) ghost_messageUsedTwice++;
            ghostErasedByPatient[anchored.recordId] = true;
            return true;
        } catch {
            return false;
        }
    }

    /// @dev Mostly an admin or relayer key (a clinic's when `clinic`), sometimes any actor:
    /// signing keys, other roles, an outsider, a patient.
    function _sender(uint8 seed, bool clinic) internal view returns (address) {
        if (seed % 4 == 0) return senders[(seed >> 2) % senders.length];
        if (clinic) return senders[(seed >> 2) % 4];
        address[7] memory active =
            [a.clinicA, a.clinicARelayer, a.clinicB, a.clinicBRelayer, a.insurer, a.research, a.auditor];
        return active[(seed >> 2) % 7];
    }

    /// @dev The sender of a successful state change must act for an active member (of role CLINIC if needed).
    function _checkSender(address sender, bool clinicOnly) internal {
        address member = actsFor[sender];
        if (member == address(0)) {
            ghost_inactiveSenderActed++;
        } else if (modelSuspended[member]) {
            ghost_suspendedMemberActed++;
        } else if (clinicOnly && roleOf[member] != Role.CLINIC) {
            ghost_nonClinicActed++;
        }
    }

    /// @dev A successful signed message: its digest and nonce were unused and its deadline not passed.
    function _checkSigned(address verifier, address patient, uint256 nonce, uint256 deadline, bytes32 digest) internal {
        if (ghostDigestUsed[digest] || ghostNonceUsed[verifier][patient][nonce]) ghost_messageUsedTwice++;
        if (block.timestamp > deadline) ghost_messageUsedAfterDeadline++;
        ghostDigestUsed[digest] = true;
        ghostNonceUsed[verifier][patient][nonce] = true;
    }

    function _patientIndex(address patient) internal view returns (uint256) {
        for (uint256 i = 0; i < patients.length; ++i) {
            if (patients[i] == patient) return i;
        }
        revert("handler: unknown patient");
    }

    // ================================================================== checks used by the invariants

    /// @notice Consents the registry treats differently from the model: a revoked, expired or
    /// not-yet-valid consent that permits, or a live one whose scope is not permitted by the
    /// first live consent of its pair.
    function consentViolations() external view returns (uint256 n) {
        for (uint256 i = 0; i < ghostConsents.length; ++i) {
            GhostConsent memory c = ghostConsents[i];
            uint8 category = _lowestBit(c.categories);
            uint8 purpose = _lowestBit(c.purposes);
            (bool ok, ConsentId id) = consents.isPermitted(c.patient, c.grantee, category, purpose);
            bytes32 own = keccak256(abi.encode(c.patient, c.grantee, c.index));
            if (!_live(c)) {
                if (ConsentId.unwrap(id) == own) ++n;
                continue;
            }
            (bool found, uint256 firstIndex) = _firstLive(c.patient, c.grantee, category, purpose);
            if (!ok || !found) {
                ++n;
                continue;
            }
            if (ConsentId.unwrap(id) != keccak256(abi.encode(c.patient, c.grantee, firstIndex))) ++n;
        }
    }

    /// @notice (patient, grantee) pairs whose consent count differs from the model's.
    function pairCountMismatches() external view returns (uint256 n) {
        for (uint256 p = 0; p < patients.length; ++p) {
            for (uint256 g = 0; g < grantees.length; ++g) {
                if (consents.consentCount(patients[p], grantees[g]) != ghostPairCount[patients[p]][grantees[g]]) ++n;
            }
        }
    }

    /// @notice Anchored records marked erased without a successful erasure signed by their patient.
    function erasedWithoutSignature() external view returns (uint256 n) {
        for (uint256 i = 0; i < ghostRecords.length; ++i) {
            RecordId id = ghostRecords[i].recordId;
            if (records.isErased(id) != ghostErasedByPatient[id]) ++n;
        }
    }

    /// @notice Enrollments the registry holds that the model did not see succeed, and vice versa.
    function enrollmentMismatches() external view returns (uint256 n) {
        address[2] memory custodians = [a.clinicA, a.clinicB];
        for (uint256 p = 0; p < patients.length; ++p) {
            for (uint256 c = 0; c < 2; ++c) {
                bool enrolled = records.enrollmentOf(patients[p], custodians[c]) != bytes32(0);
                if (enrolled != ghostEnrolled[patients[p]][custodians[c]]) ++n;
            }
        }
    }

    function batchCount() external view returns (uint256) {
        return ghostBatchLeaves.length;
    }

    function _live(GhostConsent memory c) internal view returns (bool) {
        return !c.revoked && c.validFrom <= block.timestamp && block.timestamp < c.validUntil;
    }

    function _firstLive(address patient, address grantee, uint8 category, uint8 purpose)
        internal
        view
        returns (bool, uint256)
    {
        uint256 best = type(uint256).max;
        for (uint256 i = 0; i < ghostConsents.length; ++i) {
            GhostConsent memory c = ghostConsents[i];
            if (c.patient != patient || c.grantee != grantee || !_live(c)) continue;
            if ((c.categories >> category) & 1 == 0 || (c.purposes >> purpose) & 1 == 0) continue;
            if (c.index < best) best = c.index;
        }
        return (best != type(uint256).max, best);
    }

    function _lowestBit(uint256 mask) internal pure returns (uint8 i) {
        while ((mask >> i) & 1 == 0) ++i;
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
