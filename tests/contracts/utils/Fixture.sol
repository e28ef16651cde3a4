// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {CareLedgerBase} from "./CareLedgerBase.sol";
import {MemberRegistry} from "../../../contracts/MemberRegistry.sol";
import {ConsentRegistry} from "../../../contracts/ConsentRegistry.sol";
import {RecordRegistry} from "../../../contracts/RecordRegistry.sol";
import {AccessLog} from "../../../contracts/AccessLog.sol";
import {IMemberRegistry} from "../../../contracts/interfaces/IMemberRegistry.sol";
import {IConsentRegistry} from "../../../contracts/interfaces/IConsentRegistry.sol";
import {IRecordRegistry} from "../../../contracts/interfaces/IRecordRegistry.sol";
import {ConsentId, RecordId} from "../../../contracts/types/Ids.sol";
import {Role} from "../../../contracts/types/Codes.sol";

/// @title The CareLedger cluster every contract test starts from
/// @notice A council of three seats with threshold two admits, through proposals and votes,
/// two clinics (each with a relayer key for its gateway), an insurer (with a request-signing
/// key), a research institute and an auditor; all four registries are deployed against it.
abstract contract Fixture is CareLedgerBase {
    uint256 internal constant COUNCIL_THRESHOLD = 2;
    uint256 internal constant VOTING_PERIOD = 7 days;
    uint256 internal constant MAX_CHECK_LAG = 64;
    uint256 internal constant START_TIME = 1_767_225_600; // 2026-01-01T00:00:00Z
    uint256 internal constant START_BLOCK = 1_000;

    address internal seat1;
    address internal seat2;
    address internal seat3;

    address internal clinicA;
    address internal clinicARelayer;
    address internal clinicB;
    address internal clinicBRelayer;
    address internal insurer;
    address internal insurerSigner;
    uint256 internal insurerSignerKey;
    address internal research;
    address internal auditor;
    address internal outsider;

    /// @dev Patients: one pseudonym per custodian relationship.
    address internal patientA;
    uint256 internal patientAKey;
    address internal patientA2;
    uint256 internal patientA2Key;
    address internal patientB;
    uint256 internal patientBKey;

    string internal constant ENDPOINT_A = "https://clinic-a.example.org";
    string internal constant ENDPOINT_B = "https://clinic-b.example.org";

    function setUp() public virtual {
        vm.warp(START_TIME);
        vm.roll(START_BLOCK);

        seat1 = makeAddr("seat1");
        seat2 = makeAddr("seat2");
        seat3 = makeAddr("seat3");
        address[] memory founding = new address[](3);
        founding[0] = seat1;
        founding[1] = seat2;
        founding[2] = seat3;
        registry = new MemberRegistry(founding, COUNCIL_THRESHOLD, VOTING_PERIOD);
        consents = new ConsentRegistry(registry);
        records = new RecordRegistry(registry);
        accessLog = new AccessLog(registry, MAX_CHECK_LAG);

        clinicA = makeAddr("clinicA");
        clinicARelayer = makeAddr("clinicA.relayer");
        clinicB = makeAddr("clinicB");
        clinicBRelayer = makeAddr("clinicB.relayer");
        insurer = makeAddr("insurer");
        (insurerSigner, insurerSignerKey) = makeAddrAndKey("insurer.signer");
        research = makeAddr("research");
        auditor = makeAddr("auditor");
        outsider = makeAddr("outsider");

        _admit(clinicA, Role.CLINIC, "Clinic A", ENDPOINT_A);
        _admit(clinicB, Role.CLINIC, "Clinic B", ENDPOINT_B);
        _admit(insurer, Role.INSURER, "Insurer", "");
        _admit(research, Role.RESEARCH, "Research Institute", "");
        _admit(auditor, Role.AUDITOR, "Auditor", "");

        vm.prank(clinicA);
        registry.setRelayer(clinicARelayer);
        vm.prank(clinicB);
        registry.setRelayer(clinicBRelayer);
        vm.prank(insurer);
        registry.addSigner(insurerSigner);

        (patientA, patientAKey) = makeAddrAndKey("patient@clinicA");
        (patientA2, patientA2Key) = makeAddrAndKey("patient2@clinicA");
        (patientB, patientBKey) = makeAddrAndKey("patient@clinicB");
    }

    // ------------------------------------------------------------------ council

    /// @dev Admits through a proposal by seat1 and seat2's vote (threshold two).
    function _admit(address member, Role role, string memory name, string memory endpoint)
        internal
        returns (uint256 proposalId)
    {
        vm.prank(seat1);
        proposalId = registry.proposeAdmit(member, role, name, endpoint);
        vm.prank(seat2);
        assertTrue(registry.vote(proposalId), "admission did not execute");
    }

    function _suspend(address member) internal {
        vm.prank(seat1);
        uint256 id = registry.proposeSuspend(member);
        vm.prank(seat3);
        assertTrue(registry.vote(id), "suspension did not execute");
    }

    function _reinstate(address member) internal {
        vm.prank(seat2);
        uint256 id = registry.proposeReinstate(member);
        vm.prank(seat3);
        assertTrue(registry.vote(id), "reinstatement did not execute");
    }

    // ------------------------------------------------------------------ patients

    /// @dev Enrolls `patient` at `custodian` with the patient's signature, relayed by `sender`.
    function _enroll(uint256 patientKey, address patient, address custodian, address sender) internal {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patient, custodian);
        bytes memory sig = _signEnrollment(patientKey, e);
        vm.prank(sender);
        records.enrollBySig(e, sig);
    }

    /// @dev Grants a consent signed by `patientKey`, relayed by `sender`.
    function _grantConsent(uint256 patientKey, IConsentRegistry.Grant memory g, address sender)
        internal
        returns (ConsentId id)
    {
        bytes memory sig = _signGrant(patientKey, g);
        vm.prank(sender);
        id = consents.grantBySig(g, sig);
    }

    /// @dev Anchors `batch` as `sender` for `custodian`; returns the batch id and its records as anchored.
    function _anchor(address sender, address custodian, IRecordRegistry.PatientRecords[] memory batch)
        internal
        returns (uint256 batchId, IRecordRegistry.AnchoredRecord[] memory flat)
    {
        vm.prank(sender);
        batchId = records.anchor(batch);
        flat = _anchoredRecords(batchId, custodian, batch);
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
