// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Tests truncate fuzz inputs and shift literals on purpose.
// forge-lint: disable-start(unsafe-typecast, incorrect-shift, block-timestamp)

/// @title Merkle trees for tests, written independently of contracts/libraries/MerkleRoot.sol
/// @notice Same tree shape as the registry: sorted-pair keccak256 at every level (as
/// OpenZeppelin's Hashes.commutativeKeccak256), an odd last node carried up unhashed, so its
/// proof has no sibling at that level.
library MerkleBuilder {
    /// @notice keccak256 of the two nodes, smaller first.
    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return uint256(a) < uint256(b) ? keccak256(abi.encodePacked(a, b)) : keccak256(abi.encodePacked(b, a));
    }

    /// @notice Every level of the tree, leaves first, root last.
    function levels(bytes32[] memory leaves) internal pure returns (bytes32[][] memory tree) {
        require(leaves.length > 0, "MerkleBuilder: no leaves");
        uint256 depth = 1;
        for (uint256 n = leaves.length; n > 1; n = (n + 1) / 2) {
            ++depth;
        }
        tree = new bytes32[][](depth);
        bytes32[] memory first = new bytes32[](leaves.length);
        for (uint256 i = 0; i < leaves.length; ++i) {
            first[i] = leaves[i];
        }
        tree[0] = first;
        for (uint256 d = 1; d < depth; ++d) {
            bytes32[] memory below = tree[d - 1];
            bytes32[] memory level = new bytes32[]((below.length + 1) / 2);
            for (uint256 i = 0; i < level.length; ++i) {
                level[i] = 2 * i + 1 < below.length ? hashPair(below[2 * i], below[2 * i + 1]) : below[2 * i];
            }
            tree[d] = level;
        }
    }

    /// @notice The root over `leaves`.
    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        bytes32[][] memory tree = levels(leaves);
        return tree[tree.length - 1][0];
    }

    /// @notice The proof of leaf `index` in a tree built by `levels`.
    function proof(bytes32[][] memory tree, uint256 index) internal pure returns (bytes32[] memory path) {
        require(index < tree[0].length, "MerkleBuilder: index out of range");
        bytes32[] memory buffer = new bytes32[](tree.length);
        uint256 n = 0;
        for (uint256 d = 0; d + 1 < tree.length; ++d) {
            uint256 sibling = index ^ 1;
            if (sibling < tree[d].length) buffer[n++] = tree[d][sibling];
            index >>= 1;
        }
        path = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            path[i] = buffer[i];
        }
    }

    /// @notice The proof of leaf `index` among `leaves`.
    function proof(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory) {
        return proof(levels(leaves), index);
    }

    /// @notice Folds a proof from a leaf up, as OpenZeppelin's MerkleProof.processProof does.
    function processProof(bytes32[] memory path, bytes32 leaf) internal pure returns (bytes32 node) {
        node = leaf;
        for (uint256 i = 0; i < path.length; ++i) {
            node = hashPair(node, path[i]);
        }
    }
}
// forge-lint: disable-end(unsafe-typecast, incorrect-shift, block-timestamp)
