"""One harmless call each to the chat platforms' APIs, to learn whether a token works: Slack's `auth.test` and
`apps.connections.open`, Telegram's `getMe` and `getWebhookInfo`. Nothing is posted or changed.

Each raises CredentialsRejected when the platform refuses the token and ConnectorUnavailable when it cannot be
reached or fails on its side, with the platform's own words.
"""
from __future__ import annotations

from collections.abc import Callable

import httpx
from pydantic import BaseModel
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from connectors.errors import ConnectorUnavailable, CredentialsRejected

# What Slack says about a token it will not take (any other `ok: false` is Slack failing, not the token).
SLACK_REFUSALS = frozenset({"not_authed", "invalid_auth", "not_allowed_token_type", "account_inactive",
                            "token_revoked", "token_expired", "missing_scope"})


class SlackIdentity(BaseModel):
    team: str
    user: str


class TelegramIdentity(BaseModel):
    username: str


def slack_identity(token: str, *, api_url: str, timeout: float) -> SlackIdentity:
    """Who the bot token is (`auth.test`)."""
    answer = _slack(lambda client: client.auth_test(), token, api_url=api_url, timeout=timeout, method="auth.test")
    return SlackIdentity(team=str(answer.get("team") or ""), user=str(answer.get("user") or ""))


def slack_socket_url(app_token: str, *, api_url: str, timeout: float) -> None:
    """Whether the app-level token may open a Socket Mode connection (`apps.connections.open`, as bolt asks at
    start); the URL handed out is left unused and expires."""
    _slack(lambda client: client.apps_connections_open(app_token=app_token), app_token, api_url=api_url,
           timeout=timeout, method="apps.connections.open")


def _slack(call: Callable[[WebClient], SlackResponse], token: str, *, api_url: str, timeout: float,
           method: str) -> dict[str, object]:
    client = WebClient(token=token, base_url=api_url, timeout=int(max(timeout, 1)))
    try:
        data = call(client).data
        return dict(data) if isinstance(data, dict) else {}
    except SlackApiError as error:
        reason = str(error.response.get("error") or error.response.status_code)
        if reason in SLACK_REFUSALS:
            raise CredentialsRejected(f"Slack refused the token ({reason})", code=reason) from error
        raise ConnectorUnavailable(f"Slack answered {method} with {reason}") from error
    except OSError as error:  # urllib's URLError, a refused connection, a timeout
        raise ConnectorUnavailable(f"Slack could not be reached at {api_url}: {error}") from error


def telegram_identity(token: str, *, api_url: str, timeout: float) -> TelegramIdentity:
    """Which bot the token is (`getMe`)."""
    result = _telegram(token, "getMe", api_url=api_url, timeout=timeout)
    return TelegramIdentity(username=str(result.get("username") or ""))


def telegram_webhook_url(token: str, *, api_url: str, timeout: float) -> str:
    """The URL Telegram posts updates to for this bot (`getWebhookInfo`); empty when none is registered."""
    return str(_telegram(token, "getWebhookInfo", api_url=api_url, timeout=timeout).get("url") or "")


def _telegram(token: str, method: str, *, api_url: str, timeout: float) -> dict[str, object]:
    # `api_url` is python-telegram-bot's base_url: the token follows it directly (https://api.telegram.org/bot<token>).
    where = api_url.split("/bot")[0] if "/bot" in api_url else api_url
    try:
        response = httpx.get(f"{api_url}{token}/{method}", timeout=timeout)
    except httpx.HTTPError as error:
        raise ConnectorUnavailable(f"Telegram could not be reached at {where}: {error}") from error
    try:
        body = response.json()
    except ValueError as error:
        raise ConnectorUnavailable(f"Telegram answered {method} with HTTP {response.status_code}") from error
    if response.status_code in (401, 404) and not body.get("ok"):
        # 404 is what Telegram answers a token of the wrong shape; 401 a well-formed one it does not know.
        raise CredentialsRejected(f"Telegram refused the token ({body.get('description', response.status_code)})",
                                  code=str(response.status_code))
    if not body.get("ok"):
        raise ConnectorUnavailable(f"Telegram answered {method} with {body.get('description', response.status_code)}")
    result = body.get("result")
    return result if isinstance(result, dict) else {}
