// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Unordered single-use nonces (a bitmap per signer, as in Permit2)
/// @notice Any unused nonce is valid, so a stuck signed message never blocks a later one;
/// each nonce works once.
abstract contract UnorderedNonces {
    mapping(address owner => mapping(uint256 word => uint256 bitmap)) private _nonceBitmap;

    /// @notice Emitted when a signer cancels nonces it has not used.
    event NoncesInvalidated(address indexed owner, uint256 indexed word, uint256 mask);

    /// @notice Thrown when a signed message's nonce was already used or cancelled.
    error UnorderedNoncesUsed(address owner, uint256 nonce);

    /// @notice Whether `owner` has used or cancelled `nonce`.
    function nonceUsed(address owner, uint256 nonce) public view returns (bool) {
        return _nonceBitmap[owner][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @notice The raw bitmap word `word` of `owner` (bit i is nonce word*256+i).
    function nonceBitmap(address owner, uint256 word) external view returns (uint256) {
        return _nonceBitmap[owner][word];
    }

    /// @notice Cancels the caller's nonces word*256+i for every bit i set in `mask`.
    function invalidateNonces(uint256 word, uint256 mask) external {
        _nonceBitmap[msg.sender][word] |= mask;
        emit NoncesInvalidated(msg.sender, word, mask);
    }

    /// @dev Marks `nonce` used, reverting when it already was.
    function _useNonce(address owner, uint256 nonce) internal {
        uint256 bit = 1 << (nonce & 0xff);
        uint256 flipped = _nonceBitmap[owner][nonce >> 8] ^= bit;
        if (flipped & bit == 0) revert UnorderedNoncesUsed(owner, nonce);
    }
}
