"""The outbox senders this process can offer, built from settings and registered with orchestrator.delivery."""
from __future__ import annotations

import asyncio
import threading

import structlog

from orchestrator import DeliveryLoop, Sender, Services, Settings, register

log = structlog.get_logger(__name__)


def configured(settings: Settings) -> dict[str, Sender]:
    """A sender per platform whose bot token is set; none when opsos runs on the console only."""
    chosen: dict[str, Sender] = {}
    if settings.slack_bot_token:
        from bot.slack import SlackSender, client

        chosen["slack"] = SlackSender(client(settings))
    if settings.telegram_bot_token:
        from telegram import Bot

        from bot.telegram import TelegramSender

        chosen["telegram"] = TelegramSender(Bot(settings.telegram_bot_token, base_url=settings.telegram_api_url))
    return chosen


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
        loop = DeliveryLoop(self.services.stores.pool, self.services.stores.database_url, clock=self.services.now,
                            poll_seconds=self.services.settings.delivery_poll_seconds)
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
