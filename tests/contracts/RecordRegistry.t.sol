// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {Vm} from "forge-std/Vm.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Fixture} from "./utils/Fixture.sol";
import {Eip712} from "./utils/Eip712.sol";
import {MerkleBuilder} from "./utils/MerkleBuilder.sol";
import {MockERC1271Wallet} from "./utils/MockERC1271Wallet.sol";
import {IRecordRegistry} from "../../contracts/interfaces/IRecordRegistry.sol";
import {UnorderedNonces} from "../../contracts/utils/UnorderedNonces.sol";
import {RecordId} from "../../contracts/types/Ids.sol";
import {Category} from "../../contracts/types/Codes.sol";

contract RecordRegistryTest is Fixture {
    address internal walletOwner;
    uint256 internal walletOwnerKey;
    MockERC1271Wallet internal wallet;

    function setUp() public override {
        super.setUp();
        (walletOwner, walletOwnerKey) = makeAddrAndKey("wallet.owner");
        wallet = new MockERC1271Wallet(walletOwner);
    }

    function _enrollA() internal {
        _enroll(patientAKey, patientA, clinicA, clinicARelayer);
    }

    function _erase(uint256 key, IRecordRegistry.AnchoredRecord memory rec, bytes32[] memory proof, address sender)
        internal
    {
        IRecordRegistry.Erasure memory e = _erasureMsg(rec.patient, rec.recordId);
        bytes memory sig = _signErasure(key, e);
        vm.prank(sender);
        records.eraseBySig(e, rec, proof, sig);
    }

    function _expectEraseRevert(
        IRecordRegistry.Erasure memory e,
        IRecordRegistry.AnchoredRecord memory rec,
        bytes32[] memory proof,
        bytes memory sig,
        address sender,
        bytes memory err
    ) internal {
        vm.expectRevert(err);
        vm.prank(sender);
        records.eraseBySig(e, rec, proof, sig);
    }

    /// @dev Enrols patientA at clinicA and anchors `count` records for it; returns them as anchored.
    function _anchorForA(uint256 firstSeed, uint256 count)
        internal
        returns (IRecordRegistry.AnchoredRecord[] memory flat)
    {
        if (records.enrollmentOf(patientA, clinicA) == bytes32(0)) _enrollA();
        (, flat) = _anchor(clinicARelayer, clinicA, _batchOf(patientA, _entries(firstSeed, count)));
    }

    function _expectEnrollRevert(
        IRecordRegistry.Enrollment memory e,
        bytes memory sig,
        address sender,
        bytes memory err
    ) internal {
        vm.expectRevert(err);
        vm.prank(sender);
        records.enrollBySig(e, sig);
    }

    // ================================================================== constructor / views

    function test_constructor_setsMemberRegistryAndDomain() public view {
        assertEq(records.memberRegistry(), address(registry));
        assertEq(records.maxBatchSize(), 1000);
        assertEq(records.batchCount(), 0);
        assertEq(records.batchRoot(0), bytes32(0));
        (, string memory name, string memory version, uint256 chainId, address verifying,,) = records.eip712Domain();
        assertEq(name, "CareLedger RecordRegistry");
        assertEq(version, "1");
        assertEq(chainId, block.chainid);
        assertEq(verifying, address(records));
    }

    function test_enrollmentDigest_matchesIndependentEip712Digest() public {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        assertEq(records.enrollmentDigest(e), Eip712.enrollmentDigest(address(records), e));
    }

    function test_erasureDigest_matchesIndependentEip712Digest() public {
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, RecordId.wrap(keccak256("some record")));
        assertEq(records.erasureDigest(e), Eip712.erasureDigest(address(records), e));
    }

    function test_recordIdOf_matchesIndependentHash() public view {
        bytes32 commitment = keccak256("commitment");
        bytes32 id = RecordId.unwrap(records.recordIdOf(clinicA, patientA, commitment));
        assertEq(id, keccak256(abi.encode(clinicA, patientA, commitment)));
        assertTrue(id != RecordId.unwrap(records.recordIdOf(clinicB, patientA, commitment)));
        assertTrue(id != RecordId.unwrap(records.recordIdOf(clinicA, patientB, commitment)));
    }

    function test_leafHash_matchesIndependentLeaf() public view {
        IRecordRegistry.AnchoredRecord memory r = IRecordRegistry.AnchoredRecord({
            batchId: 7,
            patient: patientA,
            custodian: clinicA,
            recordId: RecordId.wrap(keccak256("id")),
            category: Category.IMMUNIZATIONS,
            commitment: keccak256("commitment"),
            supersedes: RecordId.wrap(keccak256("older"))
        });
        assertEq(records.leafHash(r), _leafOf(r));
        // The batch id locates the tree; it is not part of the leaf.
        r.batchId = 8;
        assertEq(records.leafHash(r), _leafOf(r));
    }

    function test_isErased_falseByDefault() public view {
        assertFalse(records.isErased(RecordId.wrap(keccak256("anything"))));
    }

    // ================================================================== enrollBySig

    function test_enrollBySig_enrollsAndEmits() public {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        bytes memory sig = _signEnrollment(patientAKey, e);
        vm.expectEmit(true, true, false, true, address(records));
        emit IRecordRegistry.PatientEnrolled(patientA, clinicA, e.referenceCommitment, clinicARelayer);
        vm.prank(clinicARelayer);
        records.enrollBySig(e, sig);
        assertEq(records.enrollmentOf(patientA, clinicA), e.referenceCommitment);
        assertEq(records.enrollmentOf(patientA, clinicB), bytes32(0));
        assertTrue(records.nonceUsed(patientA, e.nonce));
    }

    function test_enrollBySig_acceptsClinicAdmin() public {
        _enroll(patientAKey, patientA, clinicA, clinicA);
        assertTrue(records.enrollmentOf(patientA, clinicA) != bytes32(0));
    }

    function test_enrollBySig_reEnrollmentReplacesCommitment() public {
        _enrollA();
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        e.referenceCommitment = keccak256("new salt, same reference");
        bytes memory sig = _signEnrollment(patientAKey, e);
        vm.prank(clinicA);
        records.enrollBySig(e, sig);
        assertEq(records.enrollmentOf(patientA, clinicA), e.referenceCommitment);
    }

    function test_enrollBySig_revertsOnWrongCustodian() public {
        // clinicB's gateway relays an enrollment the patient signed for clinicA.
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        bytes memory sig = _signEnrollment(patientAKey, e);
        _expectEnrollRevert(
            e,
            sig,
            clinicBRelayer,
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryWrongCustodian.selector, clinicA, clinicBRelayer)
        );
    }

    function test_enrollBySig_revertsForNonClinicMember() public {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, insurer);
        bytes memory sig = _signEnrollment(patientAKey, e);
        _expectEnrollRevert(
            e, sig, insurer, abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotActiveMember.selector, insurer)
        );
    }

    function test_enrollBySig_revertsForNonMember() public {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, outsider);
        bytes memory sig = _signEnrollment(patientAKey, e);
        _expectEnrollRevert(
            e, sig, outsider, abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotActiveMember.selector, outsider)
        );
    }

    function test_enrollBySig_revertsForSuspendedClinic() public {
        _suspend(clinicA);
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        bytes memory sig = _signEnrollment(patientAKey, e);
        _expectEnrollRevert(
            e,
            sig,
            clinicARelayer,
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotActiveMember.selector, clinicARelayer)
        );
        _expectEnrollRevert(
            e, sig, clinicA, abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotActiveMember.selector, clinicA)
        );
    }

    function test_enrollBySig_revertsOnZeroCommitment() public {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        e.referenceCommitment = bytes32(0);
        bytes memory sig = _signEnrollment(patientAKey, e);
        _expectEnrollRevert(
            e, sig, clinicA, abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidEnrollment.selector)
        );
    }

    function test_enrollBySig_revertsOnExpiredDeadline() public {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        bytes memory sig = _signEnrollment(patientAKey, e);
        vm.warp(e.deadline + 1);
        _expectEnrollRevert(
            e, sig, clinicA, abi.encodeWithSelector(IRecordRegistry.RecordRegistryExpiredSignature.selector, e.deadline)
        );
    }

    function test_enrollBySig_revertsOnBadSignature() public {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        // A typo in the patient address: the key that signed is not that address's key.
        bytes memory sig = _signEnrollment(patientBKey, e);
        _expectEnrollRevert(
            e, sig, clinicA, abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidSignature.selector, patientA)
        );
    }

    function test_enrollBySig_revertsOnAlteredCommitment() public {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        bytes memory sig = _signEnrollment(patientAKey, e);
        e.referenceCommitment = keccak256("someone else's reference");
        _expectEnrollRevert(
            e, sig, clinicA, abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidSignature.selector, patientA)
        );
    }

    function test_enrollBySig_revertsOnReplayedNonce() public {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        bytes memory sig = _signEnrollment(patientAKey, e);
        vm.prank(clinicA);
        records.enrollBySig(e, sig);
        _expectEnrollRevert(
            e,
            sig,
            clinicARelayer,
            abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, e.nonce)
        );
    }

    function test_enrollBySig_worksForErc1271Wallet() public {
        _enroll(walletOwnerKey, address(wallet), clinicA, clinicARelayer);
        assertTrue(records.enrollmentOf(address(wallet), clinicA) != bytes32(0));
    }

    function test_enrollBySig_revertsOnWrongErc1271Answer() public {
        wallet.setMode(MockERC1271Wallet.Mode.WRONG_MAGIC);
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(address(wallet), clinicA);
        bytes memory sig = _signEnrollment(walletOwnerKey, e);
        _expectEnrollRevert(
            e,
            sig,
            clinicA,
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidSignature.selector, address(wallet))
        );
    }

    function test_invalidateNonces_cancelsASignedEnrollment() public {
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        bytes memory sig = _signEnrollment(patientAKey, e);
        vm.expectEmit(true, true, false, true, address(records));
        emit UnorderedNonces.NoncesInvalidated(patientA, e.nonce >> 8, uint256(1) << (e.nonce & 0xff));
        vm.prank(patientA);
        records.invalidateNonces(e.nonce >> 8, uint256(1) << (e.nonce & 0xff));
        assertTrue(records.nonceUsed(patientA, e.nonce));
        assertEq(records.nonceBitmap(patientA, e.nonce >> 8), uint256(1) << (e.nonce & 0xff));
        _expectEnrollRevert(
            e, sig, clinicA, abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, e.nonce)
        );
    }

    function test_invalidateNonces_atTheConsentRegistryLeavesRecordNoncesFree() public {
        // The same nonce value used at the consent registry leaves it free here.
        IRecordRegistry.Enrollment memory e = _enrollmentMsg(patientA, clinicA);
        vm.prank(patientA);
        consents.invalidateNonces(e.nonce >> 8, uint256(1) << (e.nonce & 0xff));
        bytes memory sig = _signEnrollment(patientAKey, e);
        vm.prank(clinicA);
        records.enrollBySig(e, sig);
        assertTrue(records.nonceUsed(patientA, e.nonce));
    }

    // ================================================================== anchor

    function test_anchor_anchorsBatchAndEmitsEveryRecord() public {
        _enrollA();
        _enroll(patientA2Key, patientA2, clinicA, clinicA);
        IRecordRegistry.PatientRecords[] memory batch = new IRecordRegistry.PatientRecords[](2);
        batch[0] = IRecordRegistry.PatientRecords({patient: patientA, records: _entries(10, 2)});
        batch[1] = IRecordRegistry.PatientRecords({patient: patientA2, records: _entries(20, 1)});
        IRecordRegistry.AnchoredRecord[] memory flat = _anchoredRecords(0, clinicA, batch);
        bytes32 root = _rootOf(flat);

        for (uint256 i = 0; i < flat.length; ++i) {
            vm.expectEmit(true, true, true, true, address(records));
            emit IRecordRegistry.RecordAnchored(
                flat[i].recordId, flat[i].patient, clinicA, flat[i].category, flat[i].commitment, flat[i].supersedes
            );
        }
        vm.expectEmit(true, true, false, true, address(records));
        emit IRecordRegistry.RecordBatchAnchored(0, clinicA, root, 3, clinicARelayer);
        vm.prank(clinicARelayer);
        uint256 batchId = records.anchor(batch);

        assertEq(batchId, 0);
        assertEq(records.batchCount(), 1);
        assertEq(records.batchRoot(0), root);
    }

    function test_anchor_emitsTheBatchEventLastAndOnlyTheDeclaredEvents() public {
        _enrollA();
        vm.recordLogs();
        _anchor(clinicA, clinicA, _batchOf(patientA, _entries(1, 4)));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 5);
        for (uint256 i = 0; i < 4; ++i) {
            assertEq(logs[i].topics[0], IRecordRegistry.RecordAnchored.selector);
            assertEq(logs[i].topics.length, 3);
            assertEq(logs[i].emitter, address(records));
        }
        assertEq(logs[4].topics[0], IRecordRegistry.RecordBatchAnchored.selector);
    }

    function test_anchor_numbersBatchesInOrder() public {
        IRecordRegistry.AnchoredRecord[] memory first = _anchorForA(1, 3);
        _enroll(patientBKey, patientB, clinicB, clinicB);
        (uint256 second,) = _anchor(clinicBRelayer, clinicB, _batchOf(patientB, _entries(100, 2)));
        assertEq(first[0].batchId, 0);
        assertEq(second, 1);
        assertEq(records.batchCount(), 2);
        assertEq(records.batchRoot(0), _rootOf(first));
    }

    function test_anchor_rootOfOneRecordIsItsLeaf() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(5, 1);
        assertEq(records.batchRoot(0), _leafOf(flat[0]));
        assertEq(records.batchRoot(0), records.leafHash(flat[0]));
    }

    function test_anchor_rootMatchesIndependentTreeForOddAndEvenSizes() public {
        uint256[10] memory sizes = [uint256(1), 2, 3, 4, 5, 6, 7, 8, 9, 33];
        uint256 seed = 0;
        for (uint256 k = 0; k < sizes.length; ++k) {
            IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(seed, sizes[k]);
            seed += sizes[k];
            assertEq(records.batchRoot(flat[0].batchId), _rootOf(flat));
        }
    }

    function test_anchor_derivesIdsFromCustodianAndCommitment() public {
        // The same commitment at two custodians gives two ids: no custodian can anchor under another's id.
        _enrollA();
        _enroll(patientBKey, patientB, clinicB, clinicB);
        (, IRecordRegistry.AnchoredRecord[] memory a) = _anchor(clinicA, clinicA, _batchOf(patientA, _entries(7, 1)));
        (, IRecordRegistry.AnchoredRecord[] memory b) = _anchor(clinicB, clinicB, _batchOf(patientB, _entries(7, 1)));
        assertEq(RecordId.unwrap(a[0].recordId), RecordId.unwrap(records.recordIdOf(clinicA, patientA, a[0].commitment)));
        assertTrue(RecordId.unwrap(a[0].recordId) != RecordId.unwrap(b[0].recordId));
    }

    function test_anchor_recordsSupersedingVersion() public {
        IRecordRegistry.AnchoredRecord[] memory v1 = _anchorForA(1, 1);
        IRecordRegistry.RecordEntry[] memory list = _entries(2, 1);
        list[0].supersedes = v1[0].recordId;
        IRecordRegistry.AnchoredRecord[] memory expected = _anchoredRecords(1, clinicA, _batchOf(patientA, list));
        vm.expectEmit(true, true, true, true, address(records));
        emit IRecordRegistry.RecordAnchored(
            expected[0].recordId, patientA, clinicA, expected[0].category, expected[0].commitment, v1[0].recordId
        );
        vm.prank(clinicA);
        records.anchor(_batchOf(patientA, list));
        assertEq(records.batchRoot(1), _leafOf(expected[0]));
    }

    function test_anchor_acceptsEveryCategory() public {
        _enrollA();
        IRecordRegistry.RecordEntry[] memory list = _entries(0, Category.COUNT);
        for (uint256 i = 0; i < list.length; ++i) {
            list[i].category = uint8(i);
        }
        _anchor(clinicA, clinicA, _batchOf(patientA, list));
        assertEq(records.batchCount(), 1);
    }

    function test_anchor_acceptsMaxBatchSize() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(0, 1000);
        assertEq(records.batchRoot(0), _rootOf(flat));
    }

    function test_anchor_revertsAboveMaxBatchSize() public {
        _enrollA();
        IRecordRegistry.PatientRecords[] memory batch = _batchOf(patientA, _entries(0, 1001));
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidBatchSize.selector, 1001));
        vm.prank(clinicA);
        records.anchor(batch);
    }

    function test_anchor_revertsAboveMaxBatchSizeAcrossPatients() public {
        _enrollA();
        _enroll(patientA2Key, patientA2, clinicA, clinicA);
        IRecordRegistry.PatientRecords[] memory batch = new IRecordRegistry.PatientRecords[](2);
        batch[0] = IRecordRegistry.PatientRecords({patient: patientA, records: _entries(0, 600)});
        batch[1] = IRecordRegistry.PatientRecords({patient: patientA2, records: _entries(600, 401)});
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidBatchSize.selector, 1001));
        vm.prank(clinicA);
        records.anchor(batch);
    }

    function test_anchor_revertsOnEmptyBatch() public {
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidBatchSize.selector, 0));
        vm.prank(clinicA);
        records.anchor(new IRecordRegistry.PatientRecords[](0));
    }

    function test_anchor_revertsOnPatientsWithoutRecords() public {
        _enrollA();
        IRecordRegistry.PatientRecords[] memory batch = _batchOf(patientA, new IRecordRegistry.RecordEntry[](0));
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidBatchSize.selector, 0));
        vm.prank(clinicA);
        records.anchor(batch);
    }

    function test_anchor_revertsForUnenrolledPatient() public {
        IRecordRegistry.PatientRecords[] memory batch = _batchOf(patientA, _entries(0, 2));
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotEnrolled.selector, patientA, clinicA));
        vm.prank(clinicA);
        records.anchor(batch);
    }

    function test_anchor_revertsForPatientEnrolledAtAnotherCustodian() public {
        _enroll(patientBKey, patientB, clinicB, clinicB);
        IRecordRegistry.PatientRecords[] memory batch = _batchOf(patientB, _entries(0, 2));
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotEnrolled.selector, patientB, clinicA));
        vm.prank(clinicARelayer);
        records.anchor(batch);
    }

    function test_anchor_revertsWhenAnyPatientIsUnenrolled() public {
        _enrollA();
        IRecordRegistry.PatientRecords[] memory batch = new IRecordRegistry.PatientRecords[](2);
        batch[0] = IRecordRegistry.PatientRecords({patient: patientA, records: _entries(0, 2)});
        batch[1] = IRecordRegistry.PatientRecords({patient: patientA2, records: _entries(2, 2)});
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotEnrolled.selector, patientA2, clinicA));
        vm.prank(clinicA);
        records.anchor(batch);
        assertEq(records.batchCount(), 0);
    }

    function test_anchor_revertsOnZeroCommitment() public {
        _enrollA();
        IRecordRegistry.RecordEntry[] memory list = _entries(0, 3);
        list[2].commitment = bytes32(0);
        IRecordRegistry.PatientRecords[] memory batch = _batchOf(patientA, list);
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidRecord.selector, bytes32(0)));
        vm.prank(clinicA);
        records.anchor(batch);
    }

    function test_anchor_revertsOnUnknownCategory() public {
        _enrollA();
        IRecordRegistry.RecordEntry[] memory list = _entries(0, 3);
        list[1].category = Category.COUNT;
        IRecordRegistry.PatientRecords[] memory batch = _batchOf(patientA, list);
        vm.expectRevert(
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidRecord.selector, list[1].commitment)
        );
        vm.prank(clinicA);
        records.anchor(batch);
    }

    function test_anchor_revertsForSuspendedClinic() public {
        _enrollA();
        _suspend(clinicA);
        IRecordRegistry.PatientRecords[] memory batch = _batchOf(patientA, _entries(0, 1));
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotActiveMember.selector, clinicARelayer));
        vm.prank(clinicARelayer);
        records.anchor(batch);
    }

    function test_anchor_revertsForNonClinicMember() public {
        IRecordRegistry.PatientRecords[] memory batch = _batchOf(patientA, _entries(0, 1));
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotActiveMember.selector, research));
        vm.prank(research);
        records.anchor(batch);
    }

    function test_anchor_revertsForNonMember() public {
        IRecordRegistry.PatientRecords[] memory batch = _batchOf(patientA, _entries(0, 1));
        vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotActiveMember.selector, patientA));
        vm.prank(patientA);
        records.anchor(batch);
    }

    function test_anchor_resumesAfterReinstatement() public {
        _enrollA();
        _suspend(clinicA);
        _reinstate(clinicA);
        _anchor(clinicARelayer, clinicA, _batchOf(patientA, _entries(0, 1)));
        assertEq(records.batchCount(), 1);
    }

    // ================================================================== eraseBySig

    function test_eraseBySig_marksErasedAndEmits() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 3);
        bytes32[] memory proof = MerkleBuilder.proof(_leavesOf(flat), 1);
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[1].recordId);
        bytes memory sig = _signErasure(patientAKey, e);

        vm.expectEmit(true, true, true, true, address(records));
        emit IRecordRegistry.RecordErased(flat[1].recordId, patientA, clinicA, 0, insurer);
        vm.prank(insurer);
        records.eraseBySig(e, flat[1], proof, sig);

        assertTrue(records.isErased(flat[1].recordId));
        assertFalse(records.isErased(flat[0].recordId));
        assertFalse(records.isErased(flat[2].recordId));
        assertTrue(records.nonceUsed(patientA, e.nonce));
    }

    function test_eraseBySig_worksAtEveryPositionOfOddAndEvenBatches() public {
        _enrollA();
        _enroll(patientA2Key, patientA2, clinicA, clinicA);
        uint256[9] memory sizes = [uint256(1), 2, 3, 4, 5, 6, 7, 8, 13];
        uint256 seed = 1000;
        for (uint256 k = 0; k < sizes.length; ++k) {
            // Two patients share each batch (the first record is patientA2's when size > 1).
            IRecordRegistry.PatientRecords[] memory batch;
            if (sizes[k] == 1) {
                batch = _batchOf(patientA, _entries(seed, 1));
            } else {
                batch = new IRecordRegistry.PatientRecords[](2);
                batch[0] = IRecordRegistry.PatientRecords({patient: patientA2, records: _entries(seed, 1)});
                batch[1] =
                    IRecordRegistry.PatientRecords({patient: patientA, records: _entries(seed + 1, sizes[k] - 1)});
            }
            seed += sizes[k];
            (, IRecordRegistry.AnchoredRecord[] memory flat) = _anchor(clinicARelayer, clinicA, batch);
            bytes32[][] memory tree = MerkleBuilder.levels(_leavesOf(flat));
            assertEq(records.batchRoot(flat[0].batchId), tree[tree.length - 1][0]);
            for (uint256 i = 0; i < flat.length; ++i) {
                uint256 key = flat[i].patient == patientA ? patientAKey : patientA2Key;
                _erase(key, flat[i], MerkleBuilder.proof(tree, i), clinicB);
                assertTrue(records.isErased(flat[i].recordId));
            }
        }
    }

    function test_eraseBySig_relayedBySuspendedCustodiansPeer() public {
        // The custodian itself is suspended; any other active member relays the patient's erasure.
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 2);
        _suspend(clinicA);
        _erase(patientAKey, flat[0], MerkleBuilder.proof(_leavesOf(flat), 0), auditor);
        assertTrue(records.isErased(flat[0].recordId));
    }

    function test_eraseBySig_worksForErc1271Wallet() public {
        _enroll(walletOwnerKey, address(wallet), clinicA, clinicA);
        (, IRecordRegistry.AnchoredRecord[] memory flat) =
            _anchor(clinicA, clinicA, _batchOf(address(wallet), _entries(1, 2)));
        _erase(walletOwnerKey, flat[1], MerkleBuilder.proof(_leavesOf(flat), 1), clinicA);
        assertTrue(records.isErased(flat[1].recordId));
    }

    function test_eraseBySig_revertsOnWrongErc1271Answer() public {
        _enroll(walletOwnerKey, address(wallet), clinicA, clinicA);
        (, IRecordRegistry.AnchoredRecord[] memory flat) =
            _anchor(clinicA, clinicA, _batchOf(address(wallet), _entries(1, 2)));
        wallet.setMode(MockERC1271Wallet.Mode.WRONG_MAGIC);
        IRecordRegistry.Erasure memory e = _erasureMsg(address(wallet), flat[0].recordId);
        bytes memory sig = _signErasure(walletOwnerKey, e);
        _expectEraseRevert(
            e,
            flat[0],
            MerkleBuilder.proof(_leavesOf(flat), 0),
            sig,
            clinicA,
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidSignature.selector, address(wallet))
        );
    }

    function test_eraseBySig_revertsForNonMemberRelayer() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 2);
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[0].recordId);
        bytes memory sig = _signErasure(patientAKey, e);
        _expectEraseRevert(
            e,
            flat[0],
            MerkleBuilder.proof(_leavesOf(flat), 0),
            sig,
            patientA,
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotActiveMember.selector, patientA)
        );
    }

    function test_eraseBySig_revertsForSuspendedRelayer() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 2);
        _suspend(clinicB);
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[0].recordId);
        bytes memory sig = _signErasure(patientAKey, e);
        _expectEraseRevert(
            e,
            flat[0],
            MerkleBuilder.proof(_leavesOf(flat), 0),
            sig,
            clinicBRelayer,
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryNotActiveMember.selector, clinicBRelayer)
        );
    }

    function test_eraseBySig_revertsOnExpiredDeadline() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 2);
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[0].recordId);
        bytes memory sig = _signErasure(patientAKey, e);
        vm.warp(e.deadline + 1);
        _expectEraseRevert(
            e,
            flat[0],
            MerkleBuilder.proof(_leavesOf(flat), 0),
            sig,
            clinicA,
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryExpiredSignature.selector, e.deadline)
        );
    }

    function test_eraseBySig_revertsOnWrongPatient() public {
        // patientA2 signs an erasure of patientA's record, naming itself as the record's patient.
        _enroll(patientA2Key, patientA2, clinicA, clinicA);
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 2);
        bytes32[] memory proof = MerkleBuilder.proof(_leavesOf(flat), 0);
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA2, flat[0].recordId);
        bytes memory sig = _signErasure(patientA2Key, e);
        bytes memory err = abi.encodeWithSelector(
            IRecordRegistry.RecordRegistryInvalidProof.selector, RecordId.unwrap(flat[0].recordId), 0
        );
        // The record as anchored names patientA: mismatch with the erasure.
        _expectEraseRevert(e, flat[0], proof, sig, clinicA, err);
        // Claiming the record was anchored for patientA2: the proof fails.
        flat[0].patient = patientA2;
        _expectEraseRevert(e, flat[0], proof, sig, clinicA, err);
    }

    function test_eraseBySig_revertsOnRecordIdMismatch() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 2);
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[1].recordId);
        bytes memory sig = _signErasure(patientAKey, e);
        _expectEraseRevert(
            e,
            flat[0],
            MerkleBuilder.proof(_leavesOf(flat), 0),
            sig,
            clinicA,
            abi.encodeWithSelector(
                IRecordRegistry.RecordRegistryInvalidProof.selector, RecordId.unwrap(flat[1].recordId), 0
            )
        );
    }

    function test_eraseBySig_revertsOnWrongBatch() public {
        IRecordRegistry.AnchoredRecord[] memory first = _anchorForA(1, 2);
        _anchorForA(10, 2);
        bytes32[] memory proof = MerkleBuilder.proof(_leavesOf(first), 0);
        first[0].batchId = 1;
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, first[0].recordId);
        bytes memory sig = _signErasure(patientAKey, e);
        _expectEraseRevert(
            e,
            first[0],
            proof,
            sig,
            clinicA,
            abi.encodeWithSelector(
                IRecordRegistry.RecordRegistryInvalidProof.selector, RecordId.unwrap(first[0].recordId), 1
            )
        );
    }

    function test_eraseBySig_revertsOnUnknownBatch() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 1);
        flat[0].batchId = 5;
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[0].recordId);
        bytes memory sig = _signErasure(patientAKey, e);
        _expectEraseRevert(
            e,
            flat[0],
            new bytes32[](0),
            sig,
            clinicA,
            abi.encodeWithSelector(
                IRecordRegistry.RecordRegistryInvalidProof.selector, RecordId.unwrap(flat[0].recordId), 5
            )
        );
    }

    function test_eraseBySig_revertsOnBadProof() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 4);
        bytes32[] memory proof = MerkleBuilder.proof(_leavesOf(flat), 2);
        proof[1] = keccak256("not a sibling");
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[2].recordId);
        bytes memory sig = _signErasure(patientAKey, e);
        bytes memory err = abi.encodeWithSelector(
            IRecordRegistry.RecordRegistryInvalidProof.selector, RecordId.unwrap(flat[2].recordId), 0
        );
        _expectEraseRevert(e, flat[2], proof, sig, clinicA, err);
        // Another leaf's proof, and no proof at all, fail too.
        _expectEraseRevert(e, flat[2], MerkleBuilder.proof(_leavesOf(flat), 0), sig, clinicA, err);
        _expectEraseRevert(e, flat[2], new bytes32[](0), sig, clinicA, err);
    }

    function test_eraseBySig_revertsOnAlteredRecordField() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 3);
        bytes32[] memory proof = MerkleBuilder.proof(_leavesOf(flat), 2);
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[2].recordId);
        bytes memory sig = _signErasure(patientAKey, e);
        bytes memory err = abi.encodeWithSelector(
            IRecordRegistry.RecordRegistryInvalidProof.selector, RecordId.unwrap(flat[2].recordId), 0
        );
        flat[2].category = uint8((flat[2].category + 1) % Category.COUNT);
        _expectEraseRevert(e, flat[2], proof, sig, clinicA, err);
        flat[2].category = uint8((flat[2].category + Category.COUNT - 1) % Category.COUNT);
        flat[2].custodian = clinicB;
        _expectEraseRevert(e, flat[2], proof, sig, clinicA, err);
    }

    function test_eraseBySig_revertsOnInnerNodePresentedAsRecord() public {
        // An inner node of the tree cannot be passed off as a leaf with a shorter proof.
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 4);
        bytes32[][] memory tree = MerkleBuilder.levels(_leavesOf(flat));
        bytes32[] memory shortProof = new bytes32[](1);
        shortProof[0] = tree[1][1];
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[0].recordId);
        bytes memory sig = _signErasure(patientAKey, e);
        _expectEraseRevert(
            e,
            flat[0],
            shortProof,
            sig,
            clinicA,
            abi.encodeWithSelector(
                IRecordRegistry.RecordRegistryInvalidProof.selector, RecordId.unwrap(flat[0].recordId), 0
            )
        );
    }

    function test_eraseBySig_revertsOnAlreadyErased() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 2);
        bytes32[] memory proof = MerkleBuilder.proof(_leavesOf(flat), 0);
        _erase(patientAKey, flat[0], proof, clinicA);
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[0].recordId);
        bytes memory sig = _signErasure(patientAKey, e);
        _expectEraseRevert(
            e,
            flat[0],
            proof,
            sig,
            clinicB,
            abi.encodeWithSelector(
                IRecordRegistry.RecordRegistryAlreadyErased.selector, RecordId.unwrap(flat[0].recordId)
            )
        );
    }

    function test_eraseBySig_revertsOnSignatureBySomeoneElse() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 2);
        bytes32[] memory proof = MerkleBuilder.proof(_leavesOf(flat), 1);
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[1].recordId);
        // Another patient, or a member's staff key, cannot erase patientA's record.
        uint256[2] memory keys = [patientBKey, insurerSignerKey];
        for (uint256 i = 0; i < keys.length; ++i) {
            bytes memory sig = _signErasure(keys[i], e);
            _expectEraseRevert(
                e,
                flat[1],
                proof,
                sig,
                clinicA,
                abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidSignature.selector, patientA)
            );
        }
        assertFalse(records.isErased(flat[1].recordId));
    }

    function test_eraseBySig_revertsOnEnrollmentSignatureReused() public {
        // An enrollment signature cannot stand in for an erasure (distinct typehashes).
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 1);
        IRecordRegistry.Enrollment memory en = _enrollmentMsg(patientA, clinicA);
        bytes memory enSig = _signEnrollment(patientAKey, en);
        IRecordRegistry.Erasure memory e = IRecordRegistry.Erasure({
            patient: patientA, recordId: flat[0].recordId, nonce: en.nonce, deadline: en.deadline
        });
        _expectEraseRevert(
            e,
            flat[0],
            new bytes32[](0),
            enSig,
            clinicA,
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidSignature.selector, patientA)
        );
    }

    function test_eraseBySig_revertsOnReplayedNonce() public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 2);
        bytes32[][] memory tree = MerkleBuilder.levels(_leavesOf(flat));
        IRecordRegistry.Erasure memory first = _erasureMsg(patientA, flat[0].recordId);
        bytes memory sig0 = _signErasure(patientAKey, first);
        vm.prank(clinicA);
        records.eraseBySig(first, flat[0], MerkleBuilder.proof(tree, 0), sig0);

        IRecordRegistry.Erasure memory second = _erasureMsg(patientA, flat[1].recordId);
        second.nonce = first.nonce;
        bytes memory sig1 = _signErasure(patientAKey, second);
        _expectEraseRevert(
            second,
            flat[1],
            MerkleBuilder.proof(tree, 1),
            sig1,
            clinicA,
            abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, first.nonce)
        );
    }

    function test_eraseBySig_revertsOnNonceUsedByEnrollment() public {
        _enrollA();
        IRecordRegistry.Enrollment memory en = _enrollmentMsg(patientA, clinicA);
        bytes memory enSig = _signEnrollment(patientAKey, en);
        vm.prank(clinicA);
        records.enrollBySig(en, enSig);
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 1);
        IRecordRegistry.Erasure memory e = _erasureMsg(patientA, flat[0].recordId);
        e.nonce = en.nonce;
        bytes memory sig = _signErasure(patientAKey, e);
        _expectEraseRevert(
            e,
            flat[0],
            new bytes32[](0),
            sig,
            clinicA,
            abi.encodeWithSelector(UnorderedNonces.UnorderedNoncesUsed.selector, patientA, en.nonce)
        );
    }

    /// Regression: when a record's id was keccak256(custodian, commitment), a custodian could
    /// anchor one commitment under a throw-away patient key of its own, erase that copy, and
    /// make the real patient's record read as erased without the patient's signature (and
    /// block the real erasure). The id now binds the patient too.
    function test_eraseBySig_anotherPatientCannotEraseARecordSharingItsCommitment() public {
        _enrollA();
        (, uint256 fakeKey) = makeAddrAndKey("clinicA's own fake patient");
        address fake = vm.addr(fakeKey);
        _enroll(fakeKey, fake, clinicA, clinicA);
        IRecordRegistry.RecordEntry[] memory list = _entries(42, 1);
        (, IRecordRegistry.AnchoredRecord[] memory real) = _anchor(clinicA, clinicA, _batchOf(patientA, list));
        (, IRecordRegistry.AnchoredRecord[] memory copy) = _anchor(clinicA, clinicA, _batchOf(fake, list));

        _erase(fakeKey, copy[0], new bytes32[](0), clinicA);

        assertTrue(records.isErased(copy[0].recordId));
        assertFalse(records.isErased(real[0].recordId), "patientA's record reads as erased without its signature");
    }

    // ================================================================== fuzz

    /// @dev Any batch of 1..200 records over 1..4 patients: the stored root is the independent
    /// tree's root and every record's proof verifies against it (OpenZeppelin and our builder).
    function testFuzz_anchor_everyProofVerifies(uint256 size, uint256 seed, uint8 split) public {
        size = bound(size, 1, 200);
        (IRecordRegistry.PatientRecords[] memory batch) = _splitBatch(size, seed, split);
        (uint256 batchId, IRecordRegistry.AnchoredRecord[] memory flat) = _anchor(clinicARelayer, clinicA, batch);
        bytes32 root = records.batchRoot(batchId);
        bytes32[][] memory tree = MerkleBuilder.levels(_leavesOf(flat));
        assertEq(root, tree[tree.length - 1][0]);
        for (uint256 i = 0; i < flat.length; ++i) {
            bytes32 leaf = records.leafHash(flat[i]);
            bytes32[] memory proof = MerkleBuilder.proof(tree, i);
            assertTrue(MerkleProof.verify(proof, root, leaf));
            assertEq(MerkleBuilder.processProof(proof, leaf), root);
        }
    }

    /// @dev Erasure works for a record at any position of a batch of any size.
    function testFuzz_eraseBySig_anyPositionOfAnyBatch(uint256 size, uint256 index, uint256 seed, uint8 split) public {
        size = bound(size, 1, 200);
        index = bound(index, 0, size - 1);
        IRecordRegistry.PatientRecords[] memory batch = _splitBatch(size, seed, split);
        (, IRecordRegistry.AnchoredRecord[] memory flat) = _anchor(clinicA, clinicA, batch);
        IRecordRegistry.AnchoredRecord memory rec = flat[index];
        _erase(_keyOf(rec.patient), rec, MerkleBuilder.proof(_leavesOf(flat), index), research);
        assertTrue(records.isErased(rec.recordId));
        if (size > 1) assertFalse(records.isErased(flat[(index + 1) % size].recordId));
    }

    /// @dev An erasure signed over any other field than the one submitted is refused.
    function testFuzz_eraseBySig_rejectsAnyAlteredField(uint8 field, uint256 salt) public {
        IRecordRegistry.AnchoredRecord[] memory flat = _anchorForA(1, 2);
        IRecordRegistry.Erasure memory signed = _erasureMsg(patientA, flat[0].recordId);
        bytes memory sig = _signErasure(patientAKey, signed);
        IRecordRegistry.Erasure memory sent = IRecordRegistry.Erasure({
            patient: signed.patient, recordId: signed.recordId, nonce: signed.nonce, deadline: signed.deadline
        });
        uint256 index = 0;
        field = uint8(bound(field, 0, 2));
        if (field == 0) {
            sent.recordId = flat[1].recordId;
            index = 1;
        } else if (field == 1) {
            sent.nonce = salt;
            vm.assume(salt != signed.nonce);
        } else {
            sent.deadline = bound(salt, block.timestamp, type(uint256).max);
            vm.assume(sent.deadline != signed.deadline);
        }
        _expectEraseRevert(
            sent,
            flat[index],
            MerkleBuilder.proof(_leavesOf(flat), index),
            sig,
            clinicA,
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidSignature.selector, patientA)
        );
    }

    /// @dev Random keys and commitments: enrollment succeeds iff the commitment is non-zero and
    /// the deadline has not passed, and then binds exactly that key's address.
    function testFuzz_enrollBySig_acceptsIffValid(
        uint256 privateKey,
        bytes32 commitment,
        uint256 deadline,
        uint256 nonce
    ) public {
        privateKey = bound(privateKey, 1, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140);
        address patient = vm.addr(privateKey);
        vm.assume(patient.code.length == 0);
        if (nonce % 2 == 0) deadline = bound(deadline, block.timestamp - 1 hours, block.timestamp + 1 hours);
        if (nonce % 3 == 0) commitment = bytes32(0);
        IRecordRegistry.Enrollment memory e = IRecordRegistry.Enrollment({
            patient: patient, custodian: clinicB, referenceCommitment: commitment, nonce: nonce, deadline: deadline
        });
        bytes memory sig = _sign(privateKey, Eip712.enrollmentDigest(address(records), e));
        if (block.timestamp > deadline) {
            vm.expectRevert(abi.encodeWithSelector(IRecordRegistry.RecordRegistryExpiredSignature.selector, deadline));
        } else if (commitment == bytes32(0)) {
            vm.expectRevert(IRecordRegistry.RecordRegistryInvalidEnrollment.selector);
        }
        vm.prank(clinicBRelayer);
        records.enrollBySig(e, sig);
        bool valid = block.timestamp <= deadline && commitment != bytes32(0);
        assertEq(records.enrollmentOf(patient, clinicB), valid ? commitment : bytes32(0));
        assertEq(records.nonceUsed(patient, nonce), valid);
    }

    function testFuzz_enrollBySig_rejectsAnyAlteredField(uint8 field, uint256 salt) public {
        IRecordRegistry.Enrollment memory signed = _enrollmentMsg(patientA, clinicA);
        bytes memory sig = _signEnrollment(patientAKey, signed);
        IRecordRegistry.Enrollment memory sent = IRecordRegistry.Enrollment({
            patient: signed.patient,
            custodian: signed.custodian,
            referenceCommitment: signed.referenceCommitment,
            nonce: signed.nonce,
            deadline: signed.deadline
        });
        field = uint8(bound(field, 0, 3));
        if (field == 0) {
            sent.patient = patientA2;
        } else if (field == 1) {
            sent.referenceCommitment = keccak256(abi.encode(salt));
        } else if (field == 2) {
            sent.nonce = salt;
            vm.assume(salt != signed.nonce);
        } else {
            sent.deadline = bound(salt, block.timestamp, type(uint256).max);
            vm.assume(sent.deadline != signed.deadline);
        }
        _expectEnrollRevert(
            sent,
            sig,
            clinicA,
            abi.encodeWithSelector(IRecordRegistry.RecordRegistryInvalidSignature.selector, sent.patient)
        );
    }

    /// @dev Enrols up to four patients at clinicA and spreads `size` records over them.
    function _splitBatch(uint256 size, uint256 seed, uint8 split)
        internal
        returns (IRecordRegistry.PatientRecords[] memory batch)
    {
        uint256 groups = bound(split, 1, 4);
        if (groups > size) groups = size;
        address[4] memory who = [patientA, patientA2, patientB, walletOwner];
        uint256[4] memory keys = [patientAKey, patientA2Key, patientBKey, walletOwnerKey];
        batch = new IRecordRegistry.PatientRecords[](groups);
        uint256 used = 0;
        for (uint256 g = 0; g < groups; ++g) {
            if (records.enrollmentOf(who[g], clinicA) == bytes32(0)) _enroll(keys[g], who[g], clinicA, clinicA);
            uint256 n = g == groups - 1 ? size - used : size / groups;
            batch[g] = IRecordRegistry.PatientRecords({
                patient: who[g], records: _entries(uint256(keccak256(abi.encode(seed, g))), n)
            });
            used += n;
        }
    }

    function _keyOf(address patient) internal view returns (uint256) {
        if (patient == patientA) return patientAKey;
        if (patient == patientA2) return patientA2Key;
        if (patient == patientB) return patientBKey;
        return walletOwnerKey;
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
