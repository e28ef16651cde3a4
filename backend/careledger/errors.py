"""The project's exceptions: one root, a subclass per thing that can go wrong.

Lower layers raise these; only the API layer maps them to HTTP statuses, and only the CLI
maps them to exit codes. Contract reverts are decoded into them in `careledger.chain`.
"""

from __future__ import annotations

from typing import Any


class CareLedgerError(Exception):
    """Root of every error CareLedger raises on purpose."""


class ConfigurationError(CareLedgerError):
    """The settings, deployment file or toolchain are missing or inconsistent."""


class ToolchainError(ConfigurationError):
    """A toolchain binary (anvil, forge, the solc shim) is missing or failed."""


class CompilationError(ToolchainError):
    """The Solidity compiler reported errors."""


class InvalidSignatureFormat(CareLedgerError):
    """A signature is not in the expected encoding."""


class ChainError(CareLedgerError):
    """The chain could not be reached or answered something unexpected."""


class ChainUnavailable(ChainError):
    """The JSON-RPC endpoint did not answer."""


class TransactionFailed(ChainError):
    """A transaction was mined but reverted, or never got mined."""


class ContractReverted(ChainError):
    """A contract refused a call with a custom error.

    `error` is the Solidity error's name (e.g. `ConsentRegistryExpiredSignature`) and
    `args` its decoded arguments by parameter name.
    """

    def __init__(self, contract: str, error: str, args: dict[str, Any]) -> None:
        self.contract = contract
        self.error = error
        self.error_args = args
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        super().__init__(f"{contract} refused: {error}({shown})")


class NotActiveMember(ContractReverted):
    """The sender or signer does not act for an active member (of the role needed)."""


class NotCouncil(ContractReverted):
    """The caller holds no council seat."""


class InvalidSignature(ContractReverted):
    """A signature is not the named signer's over this message."""


class ExpiredSignature(ContractReverted):
    """A signed message's deadline has passed."""


class NonceUsed(ContractReverted):
    """A signed message's nonce was already used or cancelled."""


class NotEnrolled(ContractReverted):
    """A record names a patient not enrolled at the custodian."""


class UnknownConsent(ContractReverted):
    """No such consent for this patient and grantee."""


class AlreadyRevoked(ContractReverted):
    """The consent was already revoked."""


class AlreadyErased(ContractReverted):
    """The record was already marked erased."""


class StaleConsentCheck(ContractReverted):
    """A disclosure's consent check is older than the access log allows."""


class ProposalRejected(ContractReverted):
    """A council proposal or vote was refused (unknown, expired, executed, double vote)."""


class InvalidInput(ContractReverted):
    """A contract rejected the shape of its input (scope, window, batch, text, proof)."""


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


class AuthenticationFailed(CareLedgerError):
    """A signed request was refused; the message says why, in one line, without secrets."""


class SignatureMissing(AuthenticationFailed):
    """The request carries no Signature / Signature-Input / Content-Digest headers."""


class SignatureMalformed(AuthenticationFailed):
    """A signature header does not follow the CareLedger profile of RFC 9421."""


class SignatureExpired(AuthenticationFailed):
    """`expires` has passed beyond the clock skew (which also bounds how old `created` may be)."""


class SignatureNotYetValid(AuthenticationFailed):
    """`created` lies in the future (beyond the allowed clock skew)."""


class DigestMismatch(AuthenticationFailed):
    """Content-Digest does not match the body."""


class WrongAuthority(AuthenticationFailed):
    """The request was signed for another gateway's endpoint."""


class SignerMismatch(AuthenticationFailed):
    """The signature does not come from the key named in `keyid`."""


class NonceReused(AuthenticationFailed):
    """The request's nonce was already used."""


class DecryptionFailed(CareLedgerError):
    """A ciphertext or wrapped key did not open. Deliberately says nothing more."""


class KeyFileError(ConfigurationError):
    """A key file is missing, unreadable or not a key."""


class StoreUnavailable(CareLedgerError):
    """The database could not be reached; the operation changed nothing."""


class StoreConflict(CareLedgerError):
    """A concurrent change won a race (a unique constraint); retrying sees its result."""


class InvalidRequest(CareLedgerError):
    """The request is well-formed HTTP but asks for something invalid."""


class NotFound(CareLedgerError):
    """No such record, patient, consent or job here."""


class Gone(CareLedgerError):
    """The record was erased at its patient's request."""


class Forbidden(CareLedgerError):
    """The signer is known but not allowed this (not a member, no consent, wrong role)."""


class RateLimited(Forbidden):
    """Too many break-glass reads by this member in the current window.

    `retry_after_s`, when known, is how long until the window lets the next one through.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class Conflict(CareLedgerError):
    """The request conflicts with the state (not enrolled, already enrolled, erased, on hold)."""


class RetentionHold(Conflict):
    """A legal retention hold refuses the erasure; the message gives its basis."""


class HttpRefusal(CareLedgerError):
    """A refusal decided by the HTTP framework itself (unknown path, wrong method, unreadable body)."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(detail)


class VerificationFailed(CareLedgerError):
    """What a gateway answered does not match what the chain holds."""


class GatewayRefused(CareLedgerError):
    """A gateway answered with an error status; the message carries its reason."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"gateway answered {status}: {detail}")


class GatewayUnavailable(CareLedgerError):
    """A gateway did not answer."""
