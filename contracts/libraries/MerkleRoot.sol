// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Merkle root of a list of leaves, verifiable with OpenZeppelin's MerkleProof
/// @dev Sorted-pair keccak256 at every level; an odd last node moves up unhashed, so its
/// proof simply has no sibling at that level.
library MerkleRoot {
    /// @dev Overwrites `nodes` while reducing it level by level.
    function compute(bytes32[] memory nodes) internal pure returns (bytes32 root) {
        assembly ("memory-safe") {
            let base := add(nodes, 0x20)
            let n := mload(nodes)
            for {} gt(n, 1) {} {
                let half := shr(1, n)
                for { let i := 0 } lt(i, half) { i := add(i, 1) } {
                    let a := mload(add(base, shl(6, i)))
                    let b := mload(add(base, add(shl(6, i), 0x20)))
                    // sorted pair, as OpenZeppelin's Hashes.commutativeKeccak256
                    if gt(a, b) {
                        let t := a
                        a := b
                        b := t
                    }
                    mstore(0x00, a)
                    mstore(0x20, b)
                    mstore(add(base, shl(5, i)), keccak256(0x00, 0x40))
                }
                switch and(n, 1)
                case 1 {
                    mstore(add(base, shl(5, half)), mload(add(base, shl(5, sub(n, 1)))))
                    n := add(half, 1)
                }
                default { n := half }
            }
            root := mload(base)
        }
    }
}
