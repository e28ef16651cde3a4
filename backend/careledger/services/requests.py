"""Who is asking: verify a request's signature, spend its nonce, and resolve its signer."""

from __future__ import annotations

from dataclasses import dataclass

from careledger import errors
from careledger.auth.signatures import CLOCK_SKEW_S, VerifiedRequest, origin_of, verify_request
from careledger.chain.clients import erc1271_valid
from careledger.codes import Role
from careledger.services.gateway import Gateway
from careledger.store.repositories import Nonces


@dataclass(frozen=True)
class Principal:
    """A verified signer: a member's key (with its member and role), or anyone else's
    address, which can only ever be a patient asking about itself."""

    keyid: str
    member: str | None
    role: Role
    request: VerifiedRequest

    @property
    def is_member(self) -> bool:
        return self.member is not None

    def require_member(self, *roles: Role) -> str:
        if self.member is None:
            raise errors.Forbidden(f"{self.keyid} does not sign for an active member")
        if roles and self.role not in roles:
            wanted = " or ".join(r.name for r in roles)
            raise errors.Forbidden(f"this needs a {wanted} member; {self.member} is {self.role.name}")
        return self.member


def authenticate(
    gw: Gateway,
    *,
    method: str,
    path_and_query: str,
    body: bytes,
    headers: dict[str, str],
    host: str | None,
) -> Principal:
    """Verify a signed request addressed to this gateway; every failure is AuthenticationFailed."""
    origin = origin_of(gw.settings.endpoint)
    scheme = origin.split("://", 1)[0]
    verified = verify_request(
        method=method,
        target_uri=origin + path_and_query,
        body=body,
        headers=headers,
        now=gw.clock(),
        contract_check=lambda keyid, digest, sig: erc1271_valid(gw.ledger.w3, keyid, digest, sig),
        host_target_uri=f"{scheme}://{host}{path_and_query}" if host else None,
    )
    with gw.db.session() as s:
        Nonces(s).use(verified.keyid, verified.params.nonce, verified.params.expires + CLOCK_SKEW_S)
    member, role = gw.ledger.members.active_signer(verified.keyid)
    return Principal(verified.keyid, member, role, verified)
