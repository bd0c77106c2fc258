"""Telegram's checks: the bot token (`getMe`), and in webhook mode its secret and where Telegram posts updates
(`getWebhookInfo`) against OPSOS_TELEGRAM_WEBHOOK_URL."""
from __future__ import annotations

from connectors import ConnectorUnavailable, CredentialsRejected, telegram_identity, telegram_webhook_url
from orchestrator.doctor.verdict import Verdict, failed, ok, skipped, warning
from orchestrator.settings import Settings
from orchestrator.words import doctor as said

PART, WEBHOOK_PART = "telegram", "telegram webhook"


def check_telegram(settings: Settings, *, timeout: float = 10.0) -> list[Verdict]:
    token = settings.telegram_bot_token
    if not token:
        return [skipped(PART, said.TELEGRAM_UNSET)]
    api_url = settings.telegram_api_url
    try:
        me = telegram_identity(token, api_url=api_url, timeout=timeout)
    except CredentialsRejected as refused:
        return [failed(PART, said.telegram_failed(str(refused)), said.TELEGRAM_TOKEN_FIX)]
    except ConnectorUnavailable as down:
        return [failed(PART, said.telegram_failed(str(down)), said.TELEGRAM_REACH_FIX)]
    verdicts = [ok(PART, said.telegram_token_works(me.username))]
    if settings.telegram_mode == "polling":
        return [*verdicts, ok(WEBHOOK_PART, said.TELEGRAM_POLLING)]
    if not settings.telegram_webhook_secret:
        verdicts.append(failed(WEBHOOK_PART, said.WEBHOOK_SECRET_MISSING, said.WEBHOOK_SECRET_FIX))
    wanted = settings.telegram_webhook_url
    if not wanted:
        return [*verdicts, skipped(WEBHOOK_PART, said.WEBHOOK_UNREGISTERED)]
    try:
        registered = telegram_webhook_url(token, api_url=api_url, timeout=timeout)
    except (CredentialsRejected, ConnectorUnavailable) as error:
        return [*verdicts, failed(WEBHOOK_PART, said.telegram_failed(str(error)), said.TELEGRAM_REACH_FIX)]
    # A warning, not a failure: `opsos serve` registers the URL as it starts, after these checks.
    verdicts.append(ok(WEBHOOK_PART, said.webhook_matches(registered)) if registered == wanted
                    else warning(WEBHOOK_PART, said.webhook_differs(registered, wanted), said.WEBHOOK_URL_FIX))
    return verdicts
