// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";

/// @title Merkle root of a list of leaves, verifiable with OpenZeppelin's MerkleProof
/// @dev Sorted-pair keccak256 at every level; an odd last node moves up unhashed, so its
/// proof simply has no sibling at that level.
library MerkleRoot {
    /// @dev Overwrites `nodes` while reducing it level by level.
    function compute(bytes32[] memory nodes) internal pure returns (bytes32) {
        uint256 n = nodes.length;
        while (n > 1) {
            uint256 half = n >> 1;
            for (uint256 i = 0; i < half; ++i) {
                nodes[i] = Hashes.commutativeKeccak256(nodes[2 * i], nodes[2 * i + 1]);
            }
            if (n & 1 == 1) {
                nodes[half] = nodes[n - 1];
                n = half + 1;
            } else {
                n = half;
            }
        }
        return nodes[0];
    }
}
