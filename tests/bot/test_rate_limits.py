"""Rate limits: a 429 from Slack or Telegram defers outbox rows as long as the platform asked, never drops them.

The real slack_sdk and python-telegram-bot clients talk to the stand-ins, which answer 429 the way the
platforms do; the outbox is the real one in PostgreSQL, and time moves with `deliver(later=…)`.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from telegram import Bot

from bot.slack import SlackSender, client
from bot.telegram import TelegramSender
from orchestrator import Message, MessageKind, outbox
from orchestrator.delivery import Outcome, deliver_due
from tests.bot.chat_helpers import TELEGRAM_OPERATOR, deliver
from tests.standins import SlackStandIn, TelegramStandIn
from tests.standins.fixtures import SLACK_BOT_TOKEN

# PTB warns about its own int retry_after whenever it builds a RetryAfter; that is PTB's migration, not ours.
ptb_int_retry_after = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
def slack_sender(settings, slack_api: SlackStandIn) -> SlackSender:
    """The sender on the client opsos builds in production (client(settings)), so its retry handlers are tested."""
    chosen = settings.model_copy(update={"slack_bot_token": SLACK_BOT_TOKEN, "slack_api_url": slack_api.api_url})
    return SlackSender(client(chosen))


@pytest.fixture
async def telegram_sender(telegram_api: TelegramStandIn) -> AsyncIterator[TelegramSender]:
    async with Bot(telegram_api.token, base_url=telegram_api.base_url) as bot:
        yield TelegramSender(bot)


def post(db, channel: str, conversation: str, title: str) -> int:
    with db.connection() as conn, conn.transaction():
        item_id = outbox.post(conn, channel=channel, conversation=conversation,
                              message=Message(kind=MessageKind.NOTICE, title=title))
    assert item_id is not None
    return item_id


def row(db, item_id: int) -> dict[str, Any]:
    with db.connection() as conn:
        found = conn.execute("SELECT state, attempts, last_error, next_attempt_at FROM outbox WHERE id = %s",
                             (item_id,)).fetchone()
    assert found is not None
    return found


async def test_slack_429_defers_the_row_for_retry_after_and_it_is_delivered_once(db, slack_api, slack_sender,
                                                                                  monkeypatch) -> None:
    """Slack's 429 with Retry-After: 30 reaches the outbox as one refused call, not a client that sleeps it out;
    the row waits 30 s without counting an attempt (nothing goes at +10 s), then goes exactly once at +31 s."""
    item_id = post(db, "slack", "C0OPS", "Weekly digest")
    slack_api.fail_next("chat.postMessage", kind="ratelimited", retry_after=30)
    # slack_sdk's retry handlers sleep with asyncio.sleep (the async client) or time.sleep: record every sleep
    # asked for during the pass, so a handler sleeping out Retry-After shows as a 30 s sleep, not as a slow test.
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float, *args: Any, **kwargs: Any) -> Any:
        slept.append(delay)
        return await real_sleep(0, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    monkeypatch.setattr(time, "sleep", slept.append)

    before = datetime.now(UTC)
    outcome = await deliver(db, "slack", slack_sender)
    after = datetime.now(UTC)
    monkeypatch.undo()

    assert (outcome.deferred, outcome.delivered, outcome.failed) == ([item_id], [], [])
    [refused] = slack_api.calls_to("chat.postMessage")
    assert refused.status == 429 and refused.response == {"ok": False, "error": "ratelimited"}
    assert not [delay for delay in slept if delay >= 1], "a client slept out Retry-After inside the delivery pass"
    deferred = row(db, item_id)
    assert (deferred["state"], deferred["attempts"]) == ("pending", 0)
    assert "429" in deferred["last_error"] and "retry after 30 s" in deferred["last_error"]
    assert before + timedelta(seconds=30) <= deferred["next_attempt_at"] <= after + timedelta(seconds=30)

    assert await deliver(db, "slack", slack_sender, later=timedelta(seconds=10)) == Outcome()
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    assert (await deliver(db, "slack", slack_sender, later=timedelta(seconds=31))).delivered == [item_id]
    assert (await deliver(db, "slack", slack_sender, later=timedelta(minutes=30))).delivered == []
    assert [m["text"] for m in slack_api.messages("C0OPS")] == ["Weekly digest"]
    assert row(db, item_id)["attempts"] == 1


@ptb_int_retry_after
async def test_telegram_429_defers_the_row_for_retry_after_and_it_is_delivered_once(db, telegram_api,
                                                                                    telegram_sender) -> None:
    """Telegram's 429 (parameters.retry_after 30, PTB's RetryAfter) defers the row 30 s with no attempt counted:
    nothing is sent at +10 s, and at +31 s the message goes exactly once."""
    item_id = post(db, "telegram", str(TELEGRAM_OPERATOR), "Weekly digest")
    telegram_api.fail_next("sendMessage", kind="ratelimited", retry_after=30)

    before = datetime.now(UTC)
    outcome = await deliver(db, "telegram", telegram_sender)
    after = datetime.now(UTC)

    assert (outcome.deferred, outcome.delivered, outcome.failed) == ([item_id], [], [])
    [refused] = telegram_api.calls_to("sendMessage")
    assert refused.status == 429 and refused.response["parameters"] == {"retry_after": 30}
    deferred = row(db, item_id)
    assert (deferred["state"], deferred["attempts"]) == ("pending", 0)
    assert before + timedelta(seconds=30) <= deferred["next_attempt_at"] <= after + timedelta(seconds=30)

    assert await deliver(db, "telegram", telegram_sender, later=timedelta(seconds=10)) == Outcome()
    assert len(telegram_api.calls_to("sendMessage")) == 1
    assert (await deliver(db, "telegram", telegram_sender, later=timedelta(seconds=31))).delivered == [item_id]
    assert (await deliver(db, "telegram", telegram_sender, later=timedelta(minutes=30))).delivered == []
    assert [m["text"] for m in telegram_api.sent(TELEGRAM_OPERATOR)] == ["<b>Weekly digest</b>"]


async def test_rate_limits_neither_use_up_attempts_nor_lengthen_a_real_failures_backoff(db, slack_api,
                                                                                       slack_sender) -> None:
    """Eight 429s in a row cost the message no attempt; the real failure after them backs off as a first
    failure does (2 s, not 2⁹ s), and the message is delivered once in the end: a busy Slack drops nothing."""
    item_id = post(db, "slack", "C0OPS", "Approval needed")
    slack_api.fail_next("chat.postMessage", times=8, kind="ratelimited", retry_after=5)
    later = timedelta(0)
    for _ in range(8):
        assert (await deliver(db, "slack", slack_sender, later=later)).deferred == [item_id]
        assert row(db, item_id)["attempts"] == 0
        later += timedelta(seconds=6)

    slack_api.fail_next("chat.postMessage")  # a 500: a real failed attempt
    before = datetime.now(UTC) + later
    assert (await deliver(db, "slack", slack_sender, later=later)).failed == [item_id]
    failed = row(db, item_id)
    assert failed["attempts"] == 1 and "internal_error" in failed["last_error"]
    assert failed["next_attempt_at"] - before < outbox.retry_delay(1) + timedelta(seconds=1)

    assert (await deliver(db, "slack", slack_sender, later=later + timedelta(seconds=3))).delivered == [item_id]
    assert [c.status for c in slack_api.calls_to("chat.postMessage")] == [429] * 8 + [500, 200]
    assert [m["text"] for m in slack_api.messages()] == ["Approval needed"]


async def test_a_429_holds_the_whole_channel_and_no_other_row_is_sent_into_it(db, slack_api, slack_sender) -> None:
    """Once Slack says 429 the pass stops: the rest of the batch, another conversation and a row beyond the batch
    all wait the 30 s too (one call, not four), other channels are untouched, and at +31 s all four go in order."""
    first = post(db, "slack", "C0OPS", "one")
    other = post(db, "slack", "C0OTHER", "two")
    third = post(db, "slack", "C0OPS", "three")
    beyond = post(db, "slack", "C0OTHER", "four")
    console = post(db, "console", "console:local", "elsewhere")
    slack_api.fail_next("chat.postMessage", kind="ratelimited", retry_after=30)

    before = datetime.now(UTC)
    outcome = await deliver_due(db, channel="slack", sender=slack_sender, now=before, limit=3)

    assert outcome.deferred == [first, other, third] and not outcome.delivered and not outcome.failed
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    for item_id in (first, other, third, beyond):
        held = row(db, item_id)
        assert held["attempts"] == 0 and held["next_attempt_at"] >= before + timedelta(seconds=30)
    assert row(db, console)["next_attempt_at"] <= before

    assert (await deliver(db, "slack", slack_sender, later=timedelta(seconds=10))).delivered == []
    assert len(slack_api.calls_to("chat.postMessage")) == 1
    assert (await deliver(db, "slack", slack_sender, later=timedelta(seconds=31))).delivered == [
        first, other, third, beyond]
    assert [(m["channel"], m["text"]) for m in slack_api.messages()] == [
        ("C0OPS", "one"), ("C0OTHER", "two"), ("C0OPS", "three"), ("C0OTHER", "four")]


@ptb_int_retry_after
async def test_an_extreme_retry_after_is_capped_so_a_message_is_not_parked_for_a_day(db, telegram_api,
                                                                                    telegram_sender) -> None:
    """A Telegram flood wait of a day defers the row by the ceiling (15 min), where asking again costs one call;
    the row is then delivered and still has no attempt counted against it before the send that worked."""
    item_id = post(db, "telegram", str(TELEGRAM_OPERATOR), "Budget at 80 %")
    telegram_api.fail_next("sendMessage", kind="ratelimited", retry_after=86_400)
    before = datetime.now(UTC)
    assert (await deliver(db, "telegram", telegram_sender)).deferred == [item_id]
    wait = row(db, item_id)["next_attempt_at"] - before
    assert outbox.RATE_LIMIT_CEILING <= wait < outbox.RATE_LIMIT_CEILING + timedelta(seconds=5)
    assert (await deliver(db, "telegram", telegram_sender, later=timedelta(minutes=16))).delivered == [item_id]
    assert row(db, item_id)["attempts"] == 1


@pytest.mark.parametrize(("asked", "waited"), [
    (30, timedelta(seconds=30)),
    (2.5, timedelta(seconds=2.5)),
    (0, outbox.RATE_LIMIT_FLOOR),
    (-5, outbox.RATE_LIMIT_FLOOR),
    (math.nan, outbox.RATE_LIMIT_FLOOR),
    (86_400, outbox.RATE_LIMIT_CEILING),
    (math.inf, outbox.RATE_LIMIT_CEILING),
])
def test_rate_limit_delay_is_what_was_asked_within_the_floor_and_ceiling(asked: float, waited: timedelta) -> None:
    """The wait is never shorter than the platform asked (within 1 s … 15 min), and a "retry after 0", a negative
    or a garbled (NaN, infinite) value neither spins the loop nor parks the row forever."""
    assert outbox.rate_limit_delay(asked) == waited
