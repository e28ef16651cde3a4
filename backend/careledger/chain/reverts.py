"""Contract custom errors decoded into the project's exceptions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from careledger import errors

# Error name → exception class; names not listed become InvalidInput.
_BY_NAME: dict[str, type[errors.ContractReverted]] = {
    "MemberRegistryNotCouncil": errors.NotCouncil,
    "MemberRegistryNotMember": errors.NotActiveMember,
    "ConsentRegistryNotActiveMember": errors.NotActiveMember,
    "RecordRegistryNotActiveMember": errors.NotActiveMember,
    "AccessLogNotActiveMember": errors.NotActiveMember,
    "ConsentRegistryInvalidSignature": errors.InvalidSignature,
    "RecordRegistryInvalidSignature": errors.InvalidSignature,
    "ConsentRegistryExpiredSignature": errors.ExpiredSignature,
    "RecordRegistryExpiredSignature": errors.ExpiredSignature,
    "UnorderedNoncesUsed": errors.NonceUsed,
    "RecordRegistryNotEnrolled": errors.NotEnrolled,
    "ConsentRegistryUnknownConsent": errors.UnknownConsent,
    "ConsentRegistryAlreadyRevoked": errors.AlreadyRevoked,
    "RecordRegistryAlreadyErased": errors.AlreadyErased,
    "AccessLogStaleCheck": errors.StaleConsentCheck,
    "MemberRegistryUnknownProposal": errors.ProposalRejected,
    "MemberRegistryProposalExecuted": errors.ProposalRejected,
    "MemberRegistryProposalExpired": errors.ProposalRejected,
    "MemberRegistryAlreadyVoted": errors.ProposalRejected,
}


class RevertDecoder:
    """Maps 4-byte selectors of the contracts' custom errors to domain exceptions."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_abi_type(i) for i in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self._errors[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)

    def decode(self, contract: str, data: bytes) -> errors.ChainError:
        """The exception for revert `data` from a call to `contract`."""
        known = self._errors.get(bytes(data[:4]))
        if known is None:
            return errors.TransactionFailed(
                f"{contract} reverted without a known error (data 0x{data.hex()})"
            )
        name, names, types = known
        values = [
            to_checksum_address(v) if t == "address" else v
            for t, v in zip(types, abi_decode(types, bytes(data[4:])) if types else (), strict=True)
        ]
        cls = _BY_NAME.get(name, errors.InvalidInput)
        return cls(contract, name, dict(zip(names, values, strict=True)))

    def names(self) -> set[str]:
        return {name for name, _, _ in self._errors.values()}


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind
