// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title The packed `meta` word of an access-log entry (see IAccessLog.Disclosure)
library DisclosureMeta {
    function pack(address requester, uint64 checkedBlock, uint8 purpose, bool breakGlass)
        internal
        pure
        returns (uint256)
    {
        return uint256(uint160(requester)) | (uint256(checkedBlock) << 160) | (uint256(purpose) << 224)
            | (breakGlass ? uint256(1) << 232 : 0);
    }

    function unpack(uint256 meta)
        internal
        pure
        returns (address requester, uint64 checkedBlock, uint8 purpose, bool breakGlass)
    {
        requester = address(uint160(meta));
        checkedBlock = uint64(meta >> 160);
        purpose = uint8(meta >> 224);
        breakGlass = (meta >> 232) & 1 == 1;
    }
}
