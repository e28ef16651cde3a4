"""`careledger gateway`: serve one custodian's gateway, and prepare its keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from careledger.cli.output import console, friendly
from careledger.config import Settings
from careledger.crypto.keyfile import create_key_file

# The services (and the store and relayer under them) are imported by the commands that use
# them, so that every other `careledger` command starts without loading them.

app = typer.Typer(no_args_is_help=True, help="Run a custodian's gateway.")


@app.command("serve")
@friendly
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(envvar="CARELEDGER_WORKERS", help="API worker processes; one sends, by lease.")
    ] = 1,
) -> None:
    """Serve the gateway configured by CARELEDGER_* settings until Ctrl-C."""
    Settings()  # fail here, with a clear message, on invalid settings
    uvicorn.run(
        "careledger.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@app.command("init-keys")
@friendly
def init_keys(
    kek_file: Annotated[Path, typer.Option(help="Key-encryption key file to create.")],
    relayer_key_file: Annotated[Path, typer.Option(help="Relayer private key file to create.")],
) -> None:
    """Create a new key-encryption key and relayer key (never overwrites either)."""
    from careledger.services.gateway import new_private_key_file

    create_key_file(kek_file)
    address = new_private_key_file(relayer_key_file)
    console.print(f"key-encryption key: {kek_file}\nrelayer key: {relayer_key_file} (address {address})")
    console.print("Register the relayer with `setRelayer` from the member's admin key before serving.")


@app.command("rotate-kek")
@friendly
def rotate_kek(
    wait: Annotated[float, typer.Option(help="Seconds to wait for a running gateway to rotate.")] = 60.0,
) -> None:
    """Re-wrap every data key under a new key-encryption key and destroy the old one.

    With the gateway running, its relayer does it; with it stopped, this command does.
    """
    from careledger.services.gateway import build_gateway
    from careledger.services.keys import rotate_now_or_request

    settings = Settings()
    gw = build_gateway(settings.model_copy(update={"relayer_enabled": False}))
    try:
        with console.status("rotating the key-encryption key…"):
            key_id = rotate_now_or_request(gw, wait_s=wait)
        console.print(f"key-encryption key rotated; current key {key_id}")
    finally:
        gw.close()


@app.command("hold")
@friendly
def hold(
    patient: Annotated[str, typer.Option(help="The patient's pseudonym at this custodian.")],
    basis: Annotated[
        str, typer.Option(help="The legal basis, shown to the patient when an erasure is refused.")
    ],
    resource_type: Annotated[
        str | None, typer.Option(help="Only this FHIR resource type (default: every record).")
    ] = None,
) -> None:
    """Place a legal retention hold (GDPR 17(3)) that refuses erasures, with its basis."""
    from careledger.services.gateway import build_gateway
    from careledger.services.holds import add_hold

    gw = build_gateway(Settings().model_copy(update={"relayer_enabled": False}))
    try:
        placed = add_hold(gw, patient, basis, resource_type)
        scope = placed.resource_type or "every record"
        console.print(f"hold {placed.hold_id} on {scope} of {placed.patient}: {placed.basis}")
    finally:
        gw.close()
