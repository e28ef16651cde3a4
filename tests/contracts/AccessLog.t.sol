// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {Vm} from "forge-std/Vm.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Fixture} from "./utils/Fixture.sol";
import {AccessLog} from "../../contracts/AccessLog.sol";
import {IAccessLog} from "../../contracts/interfaces/IAccessLog.sol";
import {DisclosureMeta} from "../../contracts/libraries/DisclosureMeta.sol";
import {ConsentId, RecordId} from "../../contracts/types/Ids.sol";
import {Purpose} from "../../contracts/types/Codes.sol";

contract AccessLogTest is Fixture {
    RecordId internal constant RECORD = RecordId.wrap(keccak256("record"));
    ConsentId internal constant CONSENT = ConsentId.wrap(keccak256("consent"));

    uint256 internal clinicBStaffKey;

    function setUp() public override {
        super.setUp();
        address staff;
        (staff, clinicBStaffKey) = makeAddrAndKey("clinicB.staff");
        vm.prank(clinicB);
        registry.addSigner(staff);
    }

    /// @dev A consent-based entry by the insurer's signing key.
    function _entry() internal view returns (IAccessLog.Disclosure memory) {
        return _disclosure(RECORD, insurerSignerKey, Purpose.HPAYMT, CONSENT);
    }

    /// @dev A break-glass entry by clinicB's staff key, its basis the hash of the reason text.
    function _breakGlass(uint8 purpose) internal view returns (IAccessLog.Disclosure memory d) {
        d = _disclosure(RECORD, clinicBStaffKey, purpose, ConsentId.wrap(0));
        d.meta = _meta(vm.addr(clinicBStaffKey), uint64(block.number), purpose, true);
        d.basis = keccak256("unconscious patient, suspected anaphylaxis");
    }

    function _setMeta(IAccessLog.Disclosure memory d, uint64 checked, uint8 purpose, bool breakGlass) internal pure {
        (address requester,,,) = DisclosureMeta.unpack(d.meta);
        d.meta = _meta(requester, checked, purpose, breakGlass);
    }

    function _expectLogRevert(IAccessLog.Disclosure[] memory list, address sender, bytes memory err) internal {
        vm.expectRevert(err);
        vm.prank(sender);
        accessLog.log(list);
    }

    function _invalid(IAccessLog.Disclosure memory d) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IAccessLog.AccessLogInvalidEntry.selector, RecordId.unwrap(d.recordId));
    }

    function _many(uint256 n) internal view returns (IAccessLog.Disclosure[] memory list) {
        list = new IAccessLog.Disclosure[](n);
        IAccessLog.Disclosure memory d = _entry();
        for (uint256 i = 0; i < n; ++i) {
            list[i] = d;
        }
    }

    // ================================================================== constructor / views

    function test_constructor_setsParameters() public view {
        assertEq(accessLog.memberRegistry(), address(registry));
        assertEq(accessLog.maxCheckLag(), MAX_CHECK_LAG);
        assertEq(accessLog.maxBatchSize(), 500);
        assertEq(accessLog.batchCount(), 0);
        assertEq(accessLog.entryCount(), 0);
    }

    function test_disclosureMeta_packMatchesTheDocumentedLayout() public pure {
        address requester = address(0xA11CE);
        uint256 meta = DisclosureMeta.pack(requester, 123_456, Purpose.HRESCH, true);
        assertEq(meta, _meta(requester, 123_456, Purpose.HRESCH, true));
        (address r, uint64 c, uint8 p, bool b) = DisclosureMeta.unpack(meta);
        assertEq(r, requester);
        assertEq(c, 123_456);
        assertEq(p, Purpose.HRESCH);
        assertTrue(b);
        assertEq(DisclosureMeta.pack(requester, 1, 0, false) >> 233, 0);
    }

    // ================================================================== log

    function test_log_logsBatchAndEmitsEveryEntry() public {
        IAccessLog.Disclosure[] memory list = new IAccessLog.Disclosure[](2);
        list[0] = _entry();
        list[1] = _breakGlass(Purpose.BTG);
        vm.expectEmit(true, true, false, true, address(accessLog));
        emit IAccessLog.AccessLogged(
            RECORD,
            insurerSigner,
            Purpose.HPAYMT,
            false,
            uint64(block.number),
            ConsentId.unwrap(CONSENT),
            list[0].requestHash,
            list[0].sigR,
            list[0].sigVS
        );
        vm.expectEmit(true, true, false, true, address(accessLog));
        emit IAccessLog.AccessLogged(
            RECORD,
            vm.addr(clinicBStaffKey),
            Purpose.BTG,
            true,
            uint64(block.number),
            list[1].basis,
            list[1].requestHash,
            list[1].sigR,
            list[1].sigVS
        );
        vm.expectEmit(true, true, false, true, address(accessLog));
        emit IAccessLog.AccessBatchLogged(0, clinicA, 2, clinicARelayer);
        vm.prank(clinicARelayer);
        uint256 batchId = accessLog.log(list);
        assertEq(batchId, 0);
        assertEq(accessLog.batchCount(), 1);
        assertEq(accessLog.entryCount(), 2);
    }

    function test_log_letsAnyoneRecoverTheRequesterFromTheEvent() public {
        vm.recordLogs();
        vm.prank(clinicA);
        accessLog.log(_one(_entry()));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 2);
        assertEq(logs[0].topics[0], IAccessLog.AccessLogged.selector);
        assertEq(logs[0].topics[1], RecordId.unwrap(RECORD));
        address named = address(uint160(uint256(logs[0].topics[2])));
        (,,,, bytes32 requestHash, bytes32 r, bytes32 vs) =
            abi.decode(logs[0].data, (uint8, bool, uint64, bytes32, bytes32, bytes32, bytes32));
        assertEq(ECDSA.recover(requestHash, r, vs), named);
        assertEq(named, insurerSigner);
        assertEq(logs[1].topics[0], IAccessLog.AccessBatchLogged.selector);
    }

    function test_log_countsBatchesAndEntries() public {
        vm.prank(clinicA);
        assertEq(accessLog.log(_many(3)), 0);
        vm.prank(clinicBRelayer);
        assertEq(accessLog.log(_many(5)), 1);
        vm.prank(clinicA);
        assertEq(accessLog.log(_many(1)), 2);
        assertEq(accessLog.batchCount(), 3);
        assertEq(accessLog.entryCount(), 9);
    }

    function test_log_acceptsCheckAtTheCurrentBlockAndAtTheLagBoundary() public {
        vm.roll(START_BLOCK + 100);
        IAccessLog.Disclosure[] memory list = new IAccessLog.Disclosure[](2);
        list[0] = _entry();
        list[1] = _entry();
        _setMeta(list[0], uint64(block.number), Purpose.HPAYMT, false);
        _setMeta(list[1], uint64(block.number - MAX_CHECK_LAG), Purpose.HPAYMT, false);
        vm.prank(clinicA);
        accessLog.log(list);
        assertEq(accessLog.entryCount(), 2);
    }

    function test_log_recordsALateCheck() public {
        // a gateway that was down past the lag still logs what it disclosed; audits flag it
        vm.roll(START_BLOCK + 100);
        IAccessLog.Disclosure memory d = _entry();
        uint64 checked = uint64(block.number - MAX_CHECK_LAG - 1);
        _setMeta(d, checked, Purpose.HPAYMT, false);
        vm.recordLogs();
        vm.prank(clinicA);
        accessLog.log(_one(d));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs[0].topics[0], IAccessLog.AccessLogged.selector);
        (,, uint64 logged,,,,) = abi.decode(logs[0].data, (uint8, bool, uint64, bytes32, bytes32, bytes32, bytes32));
        assertEq(logged, checked);
        assertEq(accessLog.entryCount(), 1);
    }

    function test_log_recordsACheckAtBlockZero() public {
        IAccessLog.Disclosure memory d = _entry();
        _setMeta(d, 0, Purpose.HPAYMT, false);
        vm.prank(clinicA);
        accessLog.log(_one(d));
        assertEq(accessLog.entryCount(), 1);
    }

    function test_log_revertsOnFutureCheck() public {
        IAccessLog.Disclosure memory d = _entry();
        uint64 checked = uint64(block.number + 1);
        _setMeta(d, checked, Purpose.HPAYMT, false);
        _expectLogRevert(
            _one(d), clinicA, abi.encodeWithSelector(IAccessLog.AccessLogStaleCheck.selector, checked, block.number)
        );
    }

    function test_log_futureEntryAnywhereRevertsTheBatch() public {
        vm.roll(START_BLOCK + 100);
        IAccessLog.Disclosure[] memory list = _many(4);
        list[3] = _entry();
        _setMeta(list[3], uint64(block.number + 1), Purpose.HPAYMT, false);
        _expectLogRevert(
            list,
            clinicA,
            abi.encodeWithSelector(IAccessLog.AccessLogStaleCheck.selector, uint64(block.number + 1), block.number)
        );
        assertEq(accessLog.entryCount(), 0);
        assertEq(accessLog.batchCount(), 0);
    }

    function test_log_acceptsBreakGlassWithEtreatOrBtg() public {
        IAccessLog.Disclosure[] memory list = new IAccessLog.Disclosure[](2);
        list[0] = _breakGlass(Purpose.ETREAT);
        list[1] = _breakGlass(Purpose.BTG);
        vm.prank(clinicB);
        accessLog.log(list);
        assertEq(accessLog.entryCount(), 2);
    }

    function test_log_revertsOnBreakGlassWithAnotherPurpose() public {
        IAccessLog.Disclosure memory d = _breakGlass(Purpose.TREAT);
        _expectLogRevert(_one(d), clinicB, _invalid(d));
        d = _breakGlass(Purpose.HPAYMT);
        _expectLogRevert(_one(d), clinicB, _invalid(d));
    }

    function test_log_revertsOnConsentEntryWithBreakGlassPurpose() public {
        IAccessLog.Disclosure memory d = _entry();
        _setMeta(d, uint64(block.number), Purpose.BTG, false);
        _expectLogRevert(_one(d), clinicA, _invalid(d));
    }

    function test_log_revertsOnUnknownPurpose() public {
        IAccessLog.Disclosure memory d = _entry();
        _setMeta(d, uint64(block.number), Purpose.COUNT, false);
        _expectLogRevert(_one(d), clinicA, _invalid(d));
        _setMeta(d, uint64(block.number), 0xff, true);
        _expectLogRevert(_one(d), clinicA, _invalid(d));
    }

    /// @dev Every purpose code, with and without break-glass, against the rule in IAccessLog.
    function test_log_appliesThePurposeRuleToEveryCode() public {
        for (uint256 p = 0; p < 256; ++p) {
            for (uint256 bg = 0; bg < 2; ++bg) {
                bool breakGlass = bg == 1;
                IAccessLog.Disclosure memory d = breakGlass ? _breakGlass(uint8(p)) : _entry();
                _setMeta(d, uint64(block.number), uint8(p), breakGlass);
                bool valid = breakGlass ? (p == Purpose.ETREAT || p == Purpose.BTG) : p < Purpose.BTG;
                if (!valid) vm.expectRevert(_invalid(d));
                vm.prank(clinicA);
                accessLog.log(_one(d));
            }
        }
        // 7 consent purposes and 2 break-glass purposes were accepted.
        assertEq(accessLog.entryCount(), 9);
    }

    function test_log_revertsOnMissingConsentId() public {
        IAccessLog.Disclosure memory d = _entry();
        d.basis = bytes32(0);
        _expectLogRevert(_one(d), clinicA, _invalid(d));
    }

    /// @dev Break-glass needs the hash of its reason as basis, as a consent entry needs its consent id.
    function test_log_revertsOnBreakGlassWithoutReasonHash() public {
        IAccessLog.Disclosure memory d = _breakGlass(Purpose.BTG);
        d.basis = bytes32(0);
        _expectLogRevert(_one(d), clinicA, _invalid(d));
    }

    function test_log_revertsOnMissingSignature() public {
        IAccessLog.Disclosure memory d = _entry();
        d.sigR = bytes32(0);
        d.sigVS = bytes32(0);
        _expectLogRevert(_one(d), clinicA, _invalid(d));
        d = _breakGlass(Purpose.BTG);
        d.sigR = bytes32(0);
        _expectLogRevert(_one(d), clinicA, _invalid(d));
    }

    function test_log_revertsOnZeroRequester() public {
        IAccessLog.Disclosure memory d = _entry();
        d.meta = _meta(address(0), uint64(block.number), Purpose.HPAYMT, false);
        _expectLogRevert(_one(d), clinicA, _invalid(d));
    }

    function test_log_revertsOnReservedMetaBits() public {
        uint256[3] memory bits = [uint256(233), 240, 255];
        for (uint256 i = 0; i < bits.length; ++i) {
            IAccessLog.Disclosure memory d = _entry();
            d.meta |= uint256(1) << bits[i];
            _expectLogRevert(_one(d), clinicA, _invalid(d));
        }
    }

    function test_log_invalidEntryAnywhereRevertsTheBatch() public {
        IAccessLog.Disclosure[] memory list = _many(5);
        list[2] = _entry();
        list[2].recordId = RecordId.wrap(keccak256("the bad one"));
        list[2].basis = bytes32(0);
        _expectLogRevert(list, clinicA, _invalid(list[2]));
        assertEq(accessLog.entryCount(), 0);
    }

    function test_log_revertsOnEmptyBatch() public {
        _expectLogRevert(
            new IAccessLog.Disclosure[](0),
            clinicA,
            abi.encodeWithSelector(IAccessLog.AccessLogInvalidBatchSize.selector, 0)
        );
    }

    function test_log_acceptsMaxBatchSize() public {
        vm.prank(clinicA);
        accessLog.log(_many(500));
        assertEq(accessLog.entryCount(), 500);
    }

    function test_log_revertsAboveMaxBatchSize() public {
        _expectLogRevert(
            _many(501), clinicA, abi.encodeWithSelector(IAccessLog.AccessLogInvalidBatchSize.selector, 501)
        );
    }

    function test_log_revertsForNonClinicMember() public {
        _expectLogRevert(
            _one(_entry()), insurer, abi.encodeWithSelector(IAccessLog.AccessLogNotActiveMember.selector, insurer)
        );
        _expectLogRevert(
            _one(_entry()), auditor, abi.encodeWithSelector(IAccessLog.AccessLogNotActiveMember.selector, auditor)
        );
    }

    function test_log_revertsForNonMember() public {
        _expectLogRevert(
            _one(_entry()), outsider, abi.encodeWithSelector(IAccessLog.AccessLogNotActiveMember.selector, outsider)
        );
    }

    function test_log_revertsForSigningKey() public {
        address staff = vm.addr(clinicBStaffKey);
        _expectLogRevert(
            _one(_entry()), staff, abi.encodeWithSelector(IAccessLog.AccessLogNotActiveMember.selector, staff)
        );
    }

    function test_log_revertsForSuspendedClinic() public {
        _suspend(clinicA);
        _expectLogRevert(
            _one(_entry()),
            clinicARelayer,
            abi.encodeWithSelector(IAccessLog.AccessLogNotActiveMember.selector, clinicARelayer)
        );
        _expectLogRevert(
            _one(_entry()), clinicA, abi.encodeWithSelector(IAccessLog.AccessLogNotActiveMember.selector, clinicA)
        );
    }

    function test_log_revertsForRotatedOutRelayer() public {
        vm.prank(clinicA);
        registry.setRelayer(makeAddr("clinicA.relayer2"));
        _expectLogRevert(
            _one(_entry()),
            clinicARelayer,
            abi.encodeWithSelector(IAccessLog.AccessLogNotActiveMember.selector, clinicARelayer)
        );
    }

    function test_log_zeroLagStillRecordsAnEarlierBlock() public {
        AccessLog strict = new AccessLog(registry, 0);
        assertEq(strict.maxCheckLag(), 0);
        IAccessLog.Disclosure memory d = _entry();
        vm.prank(clinicA);
        strict.log(_one(d));
        vm.roll(block.number + 1);
        vm.prank(clinicA);
        strict.log(_one(d));
        assertEq(strict.entryCount(), 2);
    }

    // ================================================================== fuzz

    /// @dev Any checked block up to the current one is recorded (audits judge lateness); a later one reverts.
    function testFuzz_log_checkedBlockNotInTheFuture(uint64 checked, uint32 blockNumber) public {
        vm.roll(blockNumber);
        IAccessLog.Disclosure memory d = _entry();
        _setMeta(d, checked, Purpose.HPAYMT, false);
        bool past = checked <= block.number;
        if (!past) {
            vm.expectRevert(abi.encodeWithSelector(IAccessLog.AccessLogStaleCheck.selector, checked, block.number));
        }
        vm.prank(clinicA);
        accessLog.log(_one(d));
        assertEq(accessLog.entryCount(), past ? 1 : 0);
    }

    /// @dev An arbitrary meta word, basis and signature word: accepted exactly by the documented rule.
    function testFuzz_log_entryRule(uint256 meta, bytes32 basis, bytes32 sigR, uint8 shape) public {
        // Keep the checked block fresh and, in most runs, the reserved bits clear.
        meta = (meta & ~(uint256(type(uint64).max) << 160)) | (uint256(block.number) << 160);
        if (shape & 1 == 0) meta &= (uint256(1) << 233) - 1;
        if (shape & 2 == 0) meta = (meta & ~(uint256(0xff) << 224)) | (uint256(shape % 9) << 224);
        if (shape & 4 == 0) basis = bytes32(0);
        if (shape & 8 == 0) sigR = bytes32(0);
        IAccessLog.Disclosure memory d = _entry();
        d.meta = meta;
        d.basis = basis;
        d.sigR = sigR;
        uint256 purpose = (meta >> 224) & 0xff;
        bool breakGlass = (meta >> 232) & 1 == 1;
        bool valid = (breakGlass ? (purpose == 1 || purpose == 7) : purpose < 7) && basis != 0 && sigR != 0
            && meta >> 233 == 0 && address(uint160(meta)) != address(0);
        if (!valid) vm.expectRevert(_invalid(d));
        vm.prank(clinicA);
        accessLog.log(_one(d));
        assertEq(accessLog.entryCount(), valid ? 1 : 0);
    }

    /// @dev Random valid batches: one event per entry with its own fields, then the batch event; counters add up.
    function testFuzz_log_randomBatch(uint256 count, uint256 seed, uint8 batches) public {
        batches = uint8(bound(batches, 1, 3));
        uint256 total = 0;
        for (uint256 b = 0; b < batches; ++b) {
            uint256 n = bound(uint256(keccak256(abi.encode(count, b))), 1, 120);
            IAccessLog.Disclosure[] memory list = new IAccessLog.Disclosure[](n);
            for (uint256 i = 0; i < n; ++i) {
                list[i] = _randomEntry(uint256(keccak256(abi.encode(seed, b, i))));
            }
            vm.recordLogs();
            vm.prank(b % 2 == 0 ? clinicARelayer : clinicB);
            uint256 batchId = accessLog.log(list);
            Vm.Log[] memory logs = vm.getRecordedLogs();
            assertEq(batchId, b);
            assertEq(logs.length, n + 1);
            for (uint256 i = 0; i < n; ++i) {
                _assertLogged(logs[i], list[i]);
            }
            assertEq(logs[n].topics[0], IAccessLog.AccessBatchLogged.selector);
            assertEq(uint256(logs[n].topics[1]), b);
            assertEq(address(uint160(uint256(logs[n].topics[2]))), b % 2 == 0 ? clinicA : clinicB);
            total += n;
        }
        assertEq(accessLog.batchCount(), batches);
        assertEq(accessLog.entryCount(), total);
    }

    function _randomEntry(uint256 r) internal returns (IAccessLog.Disclosure memory d) {
        vm.roll(START_BLOCK + 1000);
        uint64 checked = uint64(block.number - (r % (MAX_CHECK_LAG + 1)));
        bool breakGlass = (r >> 8) % 5 == 0;
        uint8 purpose = breakGlass ? ((r >> 16) % 2 == 0 ? Purpose.ETREAT : Purpose.BTG) : uint8((r >> 16) % 7);
        uint256 key = uint256(keccak256(abi.encode("requester", r % 7))) % (2 ** 250) + 1;
        d = _disclosure(
            RecordId.wrap(keccak256(abi.encode(r))), key, purpose, ConsentId.wrap(keccak256(abi.encode(r, 1)))
        );
        d.meta = _meta(vm.addr(key), checked, purpose, breakGlass);
    }

    function _assertLogged(Vm.Log memory entry, IAccessLog.Disclosure memory d) internal pure {
        (address requester, uint64 checked, uint8 purpose, bool breakGlass) = DisclosureMeta.unpack(d.meta);
        assertEq(entry.topics[0], IAccessLog.AccessLogged.selector);
        assertEq(entry.topics[1], RecordId.unwrap(d.recordId));
        assertEq(address(uint160(uint256(entry.topics[2]))), requester);
        (uint8 p, bool bg, uint64 c, bytes32 basis, bytes32 requestHash, bytes32 r, bytes32 vs) =
            abi.decode(entry.data, (uint8, bool, uint64, bytes32, bytes32, bytes32, bytes32));
        assertEq(p, purpose);
        assertEq(bg, breakGlass);
        assertEq(c, checked);
        assertEq(basis, d.basis);
        assertEq(requestHash, d.requestHash);
        assertEq(r, d.sigR);
        assertEq(vs, d.sigVS);
        assertEq(ECDSA.recover(requestHash, r, vs), requester);
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
