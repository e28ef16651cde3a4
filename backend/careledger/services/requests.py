"""Who is asking: verify a request's signature, spend its nonce, and resolve its signer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cached_property

from careledger import errors
from careledger.auth.signatures import CLOCK_SKEW_S, VerifiedRequest, origin_of, verify_request
from careledger.chain.clients import erc1271_valid
from careledger.codes import Role
from careledger.services.gateway import Gateway
from careledger.store.group_commit import NonceSpend


class Principal:
    """A verified signer: a member's key (with its member and role), or anyone else's
    address, which can only ever be a patient asking about itself. Whom a key signs for is
    looked up on first use: a patient's request (a new key each time) never costs a
    lookup on chain."""

    def __init__(
        self, keyid: str, request: VerifiedRequest, signs_for: Callable[[str], tuple[str | None, Role]]
    ) -> None:
        self.keyid = keyid
        self.request = request
        self._signs_for = signs_for
        self.nonce_spent = False  # set when its spend is handed to the store

    @cached_property
    def _membership(self) -> tuple[str | None, Role]:
        return self._signs_for(self.keyid)

    @property
    def member(self) -> str | None:
        return self._membership[0]

    @property
    def role(self) -> Role:
        return self._membership[1]

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


def identify(
    gw: Gateway,
    *,
    method: str,
    path_and_query: str,
    body: bytes,
    headers: dict[str, str],
    host: str | None,
) -> Principal:
    """Verify a signed request addressed to this gateway (every failure is
    AuthenticationFailed); its nonce is not spent yet: see spend_nonce."""
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
    return Principal(verified.keyid, verified, gw.ledger.members.active_signer)


def spend_nonce(gw: Gateway, principal: Principal) -> None:
    """Spend a request's nonce (NonceReused if it was used); blocks until committed."""
    gw.commits.spend_nonce(nonce_of(principal)).result()


async def spend_nonce_async(gw: Gateway, principal: Principal) -> None:
    """Spend a request's nonce (NonceReused if it was used), on an event loop: the commit,
    shared with concurrent requests', is awaited."""
    await asyncio.wrap_future(gw.commits.spend_nonce(nonce_of(principal)))


def nonce_of(principal: Principal) -> NonceSpend:
    """What spending this request's nonce records (kept until its signature expires, plus skew),
    for the caller to hand to the store at once: the principal counts as spent from here."""
    principal.nonce_spent = True
    params = principal.request.params
    return NonceSpend(principal.keyid, params.nonce, params.expires + CLOCK_SKEW_S)
