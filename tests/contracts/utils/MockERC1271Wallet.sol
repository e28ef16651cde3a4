// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title A patient's contract wallet, at the ERC-1271 boundary only
/// @notice Approves a digest when its owner key signed it. Modes let a test make it answer
/// wrongly (an almost-right magic value), revert, or approve anything.
contract MockERC1271Wallet is IERC1271 {
    enum Mode {
        OWNER_SIGNED,
        WRONG_MAGIC,
        REVERTS,
        APPROVES_ANYTHING
    }

    bytes4 internal constant MAGIC = IERC1271.isValidSignature.selector; // 0x1626ba7e

    address public immutable owner;
    Mode public mode;

    constructor(address owner_) {
        owner = owner_;
    }

    function setMode(Mode mode_) external {
        mode = mode_;
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes memory signature) external view returns (bytes4) {
        if (mode == Mode.REVERTS) revert("MockERC1271Wallet: refused");
        if (mode == Mode.APPROVES_ANYTHING) return MAGIC;
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        bool ok = err == ECDSA.RecoverError.NoError && signer == owner;
        if (!ok) return bytes4(0xffffffff);
        // The owner signed, but the wallet answers one bit off the ERC-1271 magic value.
        if (mode == Mode.WRONG_MAGIC) return bytes4(uint32(MAGIC) ^ 1);
        return MAGIC;
    }

    /// @notice Lets the owner call out as the wallet (e.g. to cancel nonces).
    function execute(address target, bytes calldata data) external returns (bytes memory) {
        require(msg.sender == owner, "MockERC1271Wallet: not owner");
        (bool ok, bytes memory result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
        return result;
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
