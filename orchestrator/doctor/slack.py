"""Slack's checks: the bot token (`auth.test`), and the signing secret (HTTP mode) or the app-level token (Socket
Mode, `apps.connections.open`, the call bolt makes at start)."""
from __future__ import annotations

from connectors import ConnectorUnavailable, CredentialsRejected, slack_identity, slack_socket_url
from orchestrator.doctor.verdict import Verdict, failed, ok, skipped
from orchestrator.settings import Settings
from orchestrator.words import doctor as said

PART, HTTP_PART, SOCKET_PART = "slack", "slack signing secret", "slack app token"


def check_slack(settings: Settings, *, timeout: float = 10.0) -> list[Verdict]:
    token = settings.slack_bot_token
    if not token:
        return [skipped(PART, said.SLACK_UNSET)]
    try:
        who = slack_identity(token, api_url=settings.slack_api_url, timeout=timeout)
        verdicts = [ok(PART, said.slack_token_works(who.team, who.user))]
    except CredentialsRejected as refused:
        verdicts = [failed(PART, said.slack_failed(str(refused)), said.SLACK_TOKEN_FIX)]
    except ConnectorUnavailable as down:
        verdicts = [failed(PART, said.slack_failed(str(down)), said.SLACK_REACH_FIX)]
    if settings.slack_mode == "http":
        verdicts.append(ok(HTTP_PART, said.SIGNING_SECRET_SET) if settings.slack_signing_secret
                        else failed(HTTP_PART, said.SIGNING_SECRET_MISSING, said.SIGNING_SECRET_FIX))
    else:
        verdicts.append(_app_token(settings, timeout))
    return verdicts


def _app_token(settings: Settings, timeout: float) -> Verdict:
    if not settings.slack_app_token:
        return failed(SOCKET_PART, said.APP_TOKEN_MISSING, said.APP_TOKEN_FIX)
    try:
        slack_socket_url(settings.slack_app_token, api_url=settings.slack_api_url, timeout=timeout)
    except CredentialsRejected as refused:
        return failed(SOCKET_PART, said.slack_failed(str(refused)), said.APP_TOKEN_FIX)
    except ConnectorUnavailable as down:
        return failed(SOCKET_PART, said.slack_failed(str(down)), said.SLACK_REACH_FIX)
    return ok(SOCKET_PART, said.APP_TOKEN_WORKS)
