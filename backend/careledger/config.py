"""The one settings object: read once from the environment (CARELEDGER_*) and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARELEDGER_", extra="ignore")

    rpc_url: str = "http://127.0.0.1:8545"
    deployment_file: Path = Path(".careledger/deployment.json")
    data_dir: Path = Path(".careledger")
    rpc_timeout_s: float = 10.0
