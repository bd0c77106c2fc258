"""The home channel's check: OPSOS_HOME_CHANNEL parses and names a front end that is configured (pure)."""
from __future__ import annotations

from orchestrator.delivery.address import home_address
from orchestrator.doctor.verdict import Verdict, failed, ok, skipped
from orchestrator.settings import Settings
from orchestrator.words import doctor as said

PART = "home channel"


def check_home_channel(settings: Settings) -> Verdict:
    value = settings.home_channel
    if not value:
        return skipped(PART, said.HOME_UNSET)
    address = home_address(value)
    if address is None or not address[1]:
        return failed(PART, said.home_malformed(value), said.HOME_FIX)
    channel = address[0]
    needs = {"slack": ("OPSOS_SLACK_BOT_TOKEN", settings.slack_bot_token),
             "telegram": ("OPSOS_TELEGRAM_BOT_TOKEN", settings.telegram_bot_token),
             "console": ("", "console")}
    if channel not in needs:
        return failed(PART, said.home_unknown(channel), said.HOME_FIX)
    setting, configured = needs[channel]
    if not configured:
        return failed(PART, said.home_unconfigured(channel, setting), said.HOME_FIX)
    return ok(PART, said.home_works(value))
