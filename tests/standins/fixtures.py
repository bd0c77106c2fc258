"""Pytest fixtures for the stand-ins: each test gets fresh, started servers, stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.standins import dovecot as dovecot_server
from tests.standins.openai_api import OpenAIStandIn
from tests.standins.slack_api import SlackStandIn
from tests.standins.slack_signing import SlackSigner
from tests.standins.smtp import SmtpStandIn
from tests.standins.stripe_api import StripeStandIn
from tests.standins.telegram_api import TelegramStandIn

SLACK_BOT_TOKEN = "xoxb-opsos-test-token"
SLACK_SIGNING_SECRET = "opsos-test-signing-secret"

__all__ = ["dovecot", "openai_api", "slack_api", "slack_signer", "smtp_server", "stripe_api", "telegram_api"]


@pytest.fixture
def slack_api() -> Iterator[SlackStandIn]:
    """Slack Web API accepting only SLACK_BOT_TOKEN; point clients at `slack_api.api_url`."""
    with SlackStandIn(token=SLACK_BOT_TOKEN) as server:
        yield server


@pytest.fixture
def slack_signer(slack_api: SlackStandIn) -> SlackSigner:
    """Signs with SLACK_SIGNING_SECRET; its response_urls land on `slack_api`."""
    return SlackSigner(
        SLACK_SIGNING_SECRET,
        response_base=slack_api.url,
        team_id=slack_api.team_id,
        bot_user_id=slack_api.bot_user_id,
    )


@pytest.fixture
def telegram_api() -> Iterator[TelegramStandIn]:
    with TelegramStandIn() as server:
        yield server


@pytest.fixture
def openai_api() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SmtpStandIn]:
    with SmtpStandIn() as server:
        yield server


@pytest.fixture
def stripe_api() -> Iterator[StripeStandIn]:
    """Stripe's REST API accepting only `tests.standins.stripe_api.API_KEY`; point StripeClient at `.url`."""
    with StripeStandIn() as server:
        yield server


@pytest.fixture
def dovecot() -> Iterator[dovecot_server.Dovecot]:
    """A real Dovecot on 127.0.0.1 with an empty INBOX; skipped where Debian's dovecot-imapd is not installed
    (`scripts/ensure-dovecot`, which `make test` runs, installs it)."""
    if not dovecot_server.available():
        pytest.skip("Dovecot is not installed: apt-get install -y dovecot-imapd")
    with dovecot_server.Dovecot() as server:
        yield server
