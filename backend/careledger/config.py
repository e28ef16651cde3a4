"""The one settings object: read once from the environment (CARELEDGER_*) and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARELEDGER_", extra="ignore")

    # chain
    rpc_url: str = "http://127.0.0.1:8545"
    deployment_file: Path = Path(".careledger/deployment.json")
    rpc_timeout_s: float = 10.0
    # A consent or membership is checked at a head read at most this long before the request
    # (DESIGN: "a block no older than a small bound"); the block used is logged. 0: a fresh
    # eth_blockNumber per request.
    head_max_age_s: float = Field(default=0.2, ge=0, le=5)

    # this gateway: the custodian member it serves, where it answers, its keys and store
    member_address: str = ""
    endpoint: str = ""  # the URL registered in MemberRegistry, e.g. https://clinic-a.example.org
    database_url: str = "sqlite:///.careledger/gateway.db"
    kek_file: Path = Path(".careledger/kek.hex")
    relayer_key_file: Path = Path(".careledger/relayer.key")

    # the relayer (the one process that sends this gateway's transactions)
    relayer_enabled: bool = True
    lease_ttl_s: float = 10.0
    anchor_batch_max: int = Field(default=200, ge=1, le=1000)
    anchor_batch_max_age_s: float = 0.5
    log_batch_max: int = Field(default=200, ge=1, le=500)
    log_batch_max_age_s: float = 0.2

    log_level: str = "INFO"

    # access
    break_glass_per_hour: int = 5
    max_body_bytes: int = 5 * 1024 * 1024
    max_json_depth: int = 64
