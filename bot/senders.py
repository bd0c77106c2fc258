"""The outbox senders this process can offer, built from settings and registered with orchestrator.delivery."""
from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import structlog

from orchestrator import DeliveryLoop, Sender, Services, Settings, register

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient
    from telegram import Bot

log = structlog.get_logger(__name__)


def for_clients(*, slack: AsyncWebClient | None = None, telegram: Bot | None = None) -> dict[str, Sender]:
    """The one sender factory: a sender per platform client given (the web app's, or ones built from settings)."""
    # Imported here: a console-only process never loads slack-bolt or python-telegram-bot.
    chosen: dict[str, Sender] = {}
    if slack is not None:
        from bot.slack import SlackSender

        chosen["slack"] = SlackSender(slack)
    if telegram is not None:
        from bot.telegram import TelegramSender

        chosen["telegram"] = TelegramSender(telegram)
    return chosen


def configured(settings: Settings) -> dict[str, Sender]:
    """A sender per platform whose bot token is set; none when opsos runs on the console only."""
    slack = telegram = None
    if settings.slack_bot_token:
        from bot.slack import client

        slack = client(settings)
    if settings.telegram_bot_token:
        from telegram import Bot

        telegram = Bot(settings.telegram_bot_token, base_url=settings.telegram_api_url)
    return for_clients(slack=slack, telegram=telegram)


def register_all(chosen: dict[str, Sender]) -> list[str]:
    for channel, sender in chosen.items():
        register(channel, sender)
    return sorted(chosen)


class DeliveryThread(threading.Thread):
    """The delivery loop on an event loop of its own, beside a synchronous process such as the RQ worker."""

    def __init__(self, services: Services) -> None:
        super().__init__(daemon=True, name="outbox-delivery")
        self.services = services
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()

    def run(self) -> None:
        settings = self.services.settings
        loop = DeliveryLoop(self.services.stores.pool, self.services.stores.database_url, clock=self.services.now,
                            poll_seconds=settings.delivery_poll_seconds, max_attempts=settings.outbox_max_attempts,
                            home=settings.home_channel)
        self._loop.run_until_complete(loop.run(self._stop))

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self.join(timeout)


def start_delivery(services: Services) -> DeliveryThread | None:
    """Register the configured senders and deliver their channels from this process; None if there are none."""
    channels = register_all(configured(services.settings))
    if not channels:
        return None
    thread = DeliveryThread(services)
    thread.start()
    log.info("outbox.delivery_started", channels=channels)
    return thread
