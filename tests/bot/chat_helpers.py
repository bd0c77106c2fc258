"""Shared steps of the Slack and Telegram tests: the operators, waiting for background listeners, delivering."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from orchestrator.delivery import Outcome, Sender, deliver_due

SLACK_OPERATOR = "U0OPERATOR"
TELEGRAM_OPERATOR = 42
OPERATORS = ["console:operator", f"slack:{SLACK_OPERATOR}", f"telegram:{TELEGRAM_OPERATOR}"]


async def eventually(check: Callable[[], object], *, timeout: float = 30.0) -> object:
    """Wait for a listener that bolt or PTB runs after the HTTP answer (they ack first, then work).

    A passing check returns at once; the long timeout only spares a loaded machine (the first request
    of a session loads the embedding model) a false failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {check}")
        await asyncio.sleep(0.05)


async def deliver(pool, channel: str, sender: Sender, *, later: timedelta = timedelta(0)) -> Outcome:
    return await deliver_due(pool, channel=channel, sender=sender, now=datetime.now(UTC) + later)


def queued_jobs(redis) -> int:
    from orchestrator.queue import QUEUE_NAMES, queue

    return sum(len(queue(redis, name)) for name in QUEUE_NAMES)
