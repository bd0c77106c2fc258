"""Shared steps of the Slack and Telegram tests: the operators, waiting for background listeners, delivering,
and reading the approval copies the stand-ins hold (their buttons, their text once a click decided them)."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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


# -- the copies of an approval on each platform, as the stand-ins hold them ------------------------------

def slack_buttons(message: dict[str, Any]) -> list[str]:
    """The values of a Slack message's buttons, in order (`approve:a…`, `resume:7`…)."""
    return [e["value"] for b in message.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]]


def slack_text(message: dict[str, Any]) -> str:
    """Everything a Slack message's blocks say, as one string to search."""
    return json.dumps(message.get("blocks") or [], ensure_ascii=False)


def slack_approval(api, channel: str = "C0OPS") -> dict[str, Any]:
    """The first message in `channel` that carries buttons: the approval request."""
    return next(m for m in api.messages(channel) if slack_buttons(m))


def slack_message(api, ts: str) -> dict[str, Any]:
    return next(m for m in api.messages() if m["ts"] == ts)


async def slack_copy_decided(api, ts: str, outcome: str) -> dict[str, Any]:
    """After a click: wait for its chat.update, then check the copy at `ts` lost its buttons and reads `outcome`."""
    await eventually(lambda: api.calls_to("chat.update"))
    copy = slack_message(api, ts)
    assert slack_buttons(copy) == [], copy
    assert outcome in slack_text(copy), copy
    return copy


def telegram_buttons(message: dict[str, Any]) -> list[str]:
    """The callback data of a Telegram message's inline keyboard, row by row."""
    return [b["callback_data"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def telegram_approval(api, chat: int = TELEGRAM_OPERATOR) -> dict[str, Any]:
    """The first message sent to `chat` that carries buttons."""
    return next(m for m in api.sent(chat) if m.get("reply_markup"))


def telegram_message(api, message_id: int, chat: int = TELEGRAM_OPERATOR) -> dict[str, Any]:
    return next(m for m in api.sent(chat) if m["message_id"] == message_id)


def callback_answers(api) -> list[str]:
    """What the bot answered each button click with (answerCallbackQuery's text), oldest first."""
    return [call.params.get("text", "") for call in api.calls_to("answerCallbackQuery")]
