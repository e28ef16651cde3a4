"""What the role commands share: the chain, keys, members by name, passphrases, JSON output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_utils.address import is_address, to_checksum_address

from careledger import errors
from careledger.chain.clients import Ledger, Member
from careledger.chain.deployment import Deployment
from careledger.codes import Category, Purpose
from careledger.config import Settings
from careledger.crypto.keystore import PatientKeystore

# Options the role commands share (each also read from the environment).
RpcUrl = Annotated[
    str | None,
    typer.Option(help="JSON-RPC URL of the chain (default: CARELEDGER_RPC_URL)."),
]
DeploymentFile = Annotated[
    Path | None,
    typer.Option(help="Deployment file (default: CARELEDGER_DEPLOYMENT_FILE).", dir_okay=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the answer as JSON on stdout.")]
MemberKeyFile = Annotated[
    Path,
    typer.Option(
        envvar="CARELEDGER_KEY_FILE",
        dir_okay=False,
        help="Your member key (hex private key file): a member's admin key or one of its signer keys.",
    ),
]
KeystoreFile = Annotated[
    Path,
    typer.Option(envvar="CARELEDGER_KEYSTORE", dir_okay=False, help="The patient's keystore."),
]
PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        dir_okay=False,
        help="Read the keystore passphrase from this file (else CARELEDGER_PASSPHRASE, else a prompt).",
    ),
]


def connect(rpc_url: str | None = None, deployment_file: Path | None = None) -> Ledger:
    """The chain, from the options or else the settings."""
    settings = Settings()
    return Ledger.connect(
        rpc_url or settings.rpc_url,
        Deployment.load(deployment_file or settings.deployment_file),
        timeout=settings.rpc_timeout_s,
    )


def find_member(ledger: Ledger, who: str) -> Member:
    """A member by address or by its registered name (case-insensitive)."""
    return pick_member(ledger.members.members(), who)


def pick_member(members: list[Member], who: str) -> Member:
    """`who` (an address or a registered name, case-insensitive) among `members`."""
    if is_address(who):
        address = to_checksum_address(who)
        for m in members:
            if m.address == address:
                return m
        raise errors.NotFound(f"{address} is not a member of this network")
    matches = [m for m in members if m.name.casefold() == who.casefold()]
    if not matches:
        names = ", ".join(sorted(m.name for m in members)) or "none"
        raise errors.NotFound(f"no member is named {who!r} (members: {names})")
    return matches[0]


def gateway_of(member: Member) -> str:
    if not member.endpoint:
        raise errors.NotFound(f"{member.name} has registered no gateway endpoint")
    return member.endpoint.rstrip("/")


def passphrase(path: Path | None, *, confirm: bool = False) -> str:
    """The keystore passphrase: from a file, CARELEDGER_PASSPHRASE, or a hidden prompt."""
    if path is not None:
        try:
            return path.read_text().rstrip("\n")
        except OSError as exc:
            raise errors.KeyFileError(f"cannot read passphrase file {path}: {exc.strerror}") from None
    if value := os.environ.get("CARELEDGER_PASSPHRASE"):
        return value
    if not sys.stdin.isatty():
        raise errors.ConfigurationError(
            "no passphrase: give --passphrase-file or CARELEDGER_PASSPHRASE (no terminal to ask on)"
        )
    return str(typer.prompt("Keystore passphrase", hide_input=True, confirmation_prompt=confirm))


def unlock(keystore: Path, passphrase_file: Path | None) -> PatientKeystore:
    return PatientKeystore.unlock(keystore, passphrase(passphrase_file))


def categories(names: Iterable[str]) -> list[Category]:
    return [_code(Category, n, "category") for n in names]


def purposes(names: Iterable[str]) -> list[Purpose]:
    return [_code(Purpose, n, "purpose") for n in names]


def _code(kind: type[Category] | type[Purpose], name: str, what: str) -> Any:
    try:
        return kind[name.strip().upper()]
    except KeyError:
        known = ", ".join(c.name for c in kind)
        raise errors.InvalidRequest(f"unknown {what} {name!r} (one of: {known})") from None


def record_id(value: str) -> bytes:
    text = value.strip().lower().removeprefix("0x")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise errors.InvalidRequest(f"{value!r} is not a record id (0x and 64 hex digits)")
    return bytes.fromhex(text)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))
