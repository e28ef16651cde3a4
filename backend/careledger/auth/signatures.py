"""CareLedger's profile of HTTP Message Signatures (RFC 9421) with Content-Digest (RFC 9530).

Covered components, in this order: "@method" "@target-uri" "content-digest", then every
`careledger-*` header of the request. Parameters, in this order: created, expires, nonce,
keyid, tag="careledger"; label sig1. The signature is EIP-191 `personal_sign` (version
0x45) over the UTF-8 signature base: 65 bytes r‖s‖v, base64 in the Signature header.
docs/signing.md is the normative description; this module follows it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address

from careledger import errors
from careledger.crypto.secp256k1 import eip191_hash, is_high_s, recover_address
from careledger.hashing import checksum_text

LABEL = "sig1"
TAG = "careledger"
FIXED_COMPONENTS = ("@method", "@target-uri", "content-digest")
HEADER_PREFIX = "careledger-"
MAX_VALIDITY_S = 300
CLOCK_SKEW_S = 60

# An ERC-1271 check for contract keyids: (keyid, message hash, signature) -> valid?
ContractSignatureCheck = Callable[[str, bytes, bytes], bool]


@dataclass(frozen=True)
class SignatureParams:
    components: tuple[str, ...]
    created: int
    expires: int
    nonce: str
    keyid: str
    tag: str = TAG

    def serialize(self) -> str:
        inner = " ".join(f'"{c}"' for c in self.components)
        return (
            f"({inner});created={self.created};expires={self.expires};"
            f'nonce="{self.nonce}";keyid="{self.keyid}";tag="{self.tag}"'
        )


@dataclass(frozen=True)
class VerifiedRequest:
    """What a verified signature tells: who signed, what exactly, and with which nonce."""

    keyid: str  # EIP-55 checksummed
    params: SignatureParams
    signature_base: str
    message_hash: bytes  # EIP-191 hash of the base: what the AccessLog records
    signature: bytes
    headers: dict[str, str]  # the covered careledger-* headers, names lower-case


def content_digest(body: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


def signature_base(
    method: str, target_uri: str, digest: str, headers: Mapping[str, str], params: SignatureParams
) -> str:
    """The RFC 9421 signature base for the CareLedger profile (lines joined by LF, none at the end)."""
    values = {"@method": method.upper(), "@target-uri": target_uri, "content-digest": digest}
    lines = []
    for component in params.components:
        value = values[component] if component in values else headers[component]
        lines.append(f'"{component}": {value}')
    lines.append(f'"@signature-params": {params.serialize()}')
    return "\n".join(lines)


def message_hash(base: str) -> bytes:
    """EIP-191 version 0x45 hash of a signature base."""
    return eip191_hash(base.encode())


def sign_request(
    private_key: bytes | str,
    method: str,
    target_uri: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    created: int | None = None,
    expires_in: int = MAX_VALIDITY_S,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers that sign a request: Content-Digest, Signature-Input, Signature, and the
    careledger-* headers given (their values are covered by the signature)."""
    covered = {k.lower(): v for k, v in (headers or {}).items()}
    for name in covered:
        if not name.startswith(HEADER_PREFIX):
            raise ValueError(f"only careledger-* headers are signed, not {name}")
    created = int(time.time()) if created is None else created
    params = SignatureParams(
        components=FIXED_COMPONENTS + tuple(sorted(covered)),
        created=created,
        expires=created + expires_in,
        nonce=nonce or secrets.token_hex(16),
        keyid=to_checksum_address(Account.from_key(private_key).address),
    )
    digest = content_digest(body)
    base = signature_base(method, target_uri, digest, covered, params)
    signature = bytes(Account.sign_message(encode_defunct(text=base), private_key).signature)
    return {
        **covered,
        "content-digest": digest,
        "signature-input": f"{LABEL}={params.serialize()}",
        "signature": f"{LABEL}=:{base64.b64encode(signature).decode()}:",
    }


_PARAMS_RE = re.compile(
    r'^\((?P<components>(?:"[a-z0-9@\-]+"(?: "[a-z0-9@\-]+")*)?)\)'
    r";created=(?P<created>\d{1,12});expires=(?P<expires>\d{1,12})"
    r';nonce="(?P<nonce>[A-Za-z0-9_\-]{8,128})";keyid="(?P<keyid>0x[0-9a-fA-F]{40})";tag="(?P<tag>[a-z0-9\-]+)"$'
)


def parse_signature_input(value: str) -> SignatureParams:
    label, _, rest = value.partition("=")
    if label.strip() != LABEL or not rest:
        raise errors.SignatureMalformed(f"Signature-Input must carry exactly one signature labelled {LABEL}")
    match = _PARAMS_RE.match(rest.strip())
    if match is None:
        raise errors.SignatureMalformed(
            "Signature-Input does not follow the profile: "
            "components, then created, expires, nonce, keyid, tag"
        )
    components = tuple(c.strip('"') for c in match["components"].split()) if match["components"] else ()
    if components[:3] != FIXED_COMPONENTS or len(set(components)) != len(components):
        raise errors.SignatureMalformed(
            'covered components must start with "@method" "@target-uri" "content-digest"'
        )
    if any(not c.startswith(HEADER_PREFIX) for c in components[3:]):
        raise errors.SignatureMalformed("only careledger-* headers may follow the fixed components")
    if match["tag"] != TAG:
        raise errors.SignatureMalformed(f'tag must be "{TAG}"')
    return SignatureParams(
        components=components,
        created=int(match["created"]),
        expires=int(match["expires"]),
        nonce=match["nonce"],
        keyid=match["keyid"],
    )


def parse_signature(value: str) -> bytes:
    label, _, rest = value.partition("=")
    rest = rest.strip()
    if label.strip() != LABEL or not (rest.startswith(":") and rest.endswith(":") and len(rest) > 2):
        raise errors.SignatureMalformed(f"Signature must be {LABEL}=:<base64>:")
    try:
        return base64.b64decode(rest[1:-1], validate=True)
    except (binascii.Error, ValueError):
        raise errors.SignatureMalformed("Signature is not valid base64") from None


def origin_of(url: str) -> str:
    """scheme://host[:port] with the default port dropped and the host lower-cased."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}"


def verify_request(
    *,
    method: str,
    target_uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
    contract_check: ContractSignatureCheck | None = None,
    host_target_uri: str | None = None,
) -> VerifiedRequest:
    """Verify a request's signature for this gateway and return what it proves.

    `target_uri` is the request's URI under this gateway's registered endpoint.
    `host_target_uri`, the same URI under the Host the client used, only sharpens the
    error when a request signed for another gateway arrives here. Nonce reuse is checked
    by the caller, which owns the nonce store.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    if not all(lower.get(h) for h in ("signature", "signature-input", "content-digest")):
        raise errors.SignatureMissing(
            "request is not signed: Signature, Signature-Input and Content-Digest are needed"
        )
    params = parse_signature_input(lower["signature-input"])
    signature = parse_signature(lower["signature"])

    present = {k for k in lower if k.startswith(HEADER_PREFIX)}
    if present != set(params.components[3:]):
        missing = sorted(present - set(params.components[3:]))
        raise errors.SignatureMalformed(
            f"every careledger-* header must be signed; not covered: {', '.join(missing) or 'none'}; "
            f"covered but absent: {', '.join(sorted(set(params.components[3:]) - present)) or 'none'}"
        )
    _check_times(params, time.time() if now is None else now)
    if lower["content-digest"].strip() != content_digest(body):
        raise errors.DigestMismatch("Content-Digest does not match the body (sha-256 expected)")
    covered = {c: lower[c] for c in params.components[3:]}
    base = signature_base(method, target_uri, lower["content-digest"].strip(), covered, params)
    digest = message_hash(base)
    keyid = checksum_text(params.keyid)
    if not _signed_by(keyid, digest, signature, contract_check):
        if host_target_uri and origin_of(host_target_uri) != origin_of(target_uri):
            other = signature_base(method, host_target_uri, lower["content-digest"].strip(), covered, params)
            if _signed_by(keyid, message_hash(other), signature, contract_check):
                signed_for, here = origin_of(host_target_uri), origin_of(target_uri)
                raise errors.WrongAuthority(f"request was signed for {signed_for}, not this gateway ({here})")
        raise errors.SignerMismatch("signature does not verify for keyid over this request")
    return VerifiedRequest(keyid, params, base, digest, signature, covered)


def _check_times(params: SignatureParams, now: float) -> None:
    if params.expires <= params.created or params.expires - params.created > MAX_VALIDITY_S:
        raise errors.SignatureMalformed(f"expires must be after created and at most {MAX_VALIDITY_S} s later")
    if params.created > now + CLOCK_SKEW_S:
        raise errors.SignatureNotYetValid("created lies in the future")
    if now > params.expires + CLOCK_SKEW_S:
        raise errors.SignatureExpired("signature expired")


def _signed_by(
    keyid: str, digest: bytes, signature: bytes, contract_check: ContractSignatureCheck | None
) -> bool:
    if len(signature) == 65 and signature[64] in (27, 28):
        if is_high_s(signature):
            # EIP-2: the high-s twin of a valid signature verifies too, and could not be
            # logged on chain in compact form.
            raise errors.SignatureMalformed("signature s is not in the lower half of the curve order (EIP-2)")
        if recover_address(digest, signature) == keyid:
            return True
    return contract_check is not None and contract_check(keyid, digest, signature)
