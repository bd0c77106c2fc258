"""Lease ownership of outbox rows: a deliverer sends and settles a row only while the row is still its own.

The real python-telegram-bot client talks to the Telegram stand-in, whose records say what the operator got;
time is the injected clock, and a pass is slow because the platform answers slowly on that clock.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from telegram import Bot

from bot.telegram import TelegramSender
from orchestrator import Message, MessageKind, OutboxItem, outbox
from orchestrator.delivery import LEASE, Progress, deliver_due
from tests.standins import TelegramStandIn

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
CHAT = "42"


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


class SlowPlatform:
    """The real sender, each send taking `each` of the injected clock; after send number n, `meanwhile[n]` runs
    (another deliverer's whole pass) before this send returns to its pass."""

    def __init__(self, sender: TelegramSender, clock: Clock, each: timedelta,
                 meanwhile: dict[int, Callable[[], Awaitable[Any]]]) -> None:
        self.sender, self.clock, self.each, self.meanwhile = sender, clock, each, meanwhile
        self.sends = 0

    async def send(self, *, item: OutboxItem, progress: Progress) -> dict[str, Any]:
        ref = await self.sender.send(item=item, progress=progress)
        self.clock.moment += self.each
        self.sends += 1
        if self.sends in self.meanwhile:
            await self.meanwhile.pop(self.sends)()
        return ref


@pytest.fixture
async def telegram_sender(telegram_api: TelegramStandIn) -> AsyncIterator[TelegramSender]:
    async with Bot(telegram_api.token, base_url=telegram_api.base_url) as bot:
        yield TelegramSender(bot)


def post(db, title: str) -> int:
    with db.connection() as conn, conn.transaction():
        item_id = outbox.post(conn, channel="telegram", conversation=CHAT,
                              message=Message(kind=MessageKind.NOTICE, title=title))
        # Due at the test's own start of time, not the database's clock.
        conn.execute("UPDATE outbox SET next_attempt_at = %s WHERE id = %s", (T0, item_id))
    assert item_id is not None
    return item_id


def sent_texts(api: TelegramStandIn) -> list[str]:
    return [call.params["text"] for call in api.calls_to("sendMessage") if call.status == 200]


async def test_a_slow_pass_does_not_send_a_row_another_deliverer_took_after_its_lease_ran_out(
        db, telegram_api, telegram_sender) -> None:
    """Proves the first part of defect 6: deliverer A leases three rows for 60 s and Telegram takes 40 s a message,
    so while A's second message is out, its lease on the third has run out and deliverer B leases and sends it.
    A used to send the third one too (the operator read it twice); now A re-confirms each row before it sends,
    finds the third is B's, and leaves it: the stand-in received each message exactly once."""
    first, second, third = (post(db, f"message {n}") for n in (1, 2, 3))
    clock = Clock(T0)
    b_outcomes = []

    async def deliverer_b() -> None:
        # At T0 + 80 s: A's lease on the third row (T0 + 60 s) is over; the second, re-confirmed at T0 + 40 s, is not.
        b_outcomes.append(await deliver_due(db, channel="telegram", sender=telegram_sender, now=clock(),
                                            clock=clock))

    slow = SlowPlatform(telegram_sender, clock, timedelta(seconds=40), meanwhile={2: deliverer_b})
    a = await deliver_due(db, channel="telegram", sender=slow, now=T0, clock=clock, lease=LEASE)
    assert sent_texts(telegram_api) == ["<b>message 1</b>", "<b>message 2</b>", "<b>message 3</b>"]
    assert (a.delivered, a.lost) == ([first, second], [third])
    assert b_outcomes[0].delivered == [third]
    with db.connection() as conn:
        rows = conn.execute("SELECT id, state, attempts FROM outbox ORDER BY id").fetchall()
    assert [(r["state"], r["attempts"]) for r in rows] == [("delivered", 1)] * 3


def snapshot(db, item_id: int) -> dict[str, Any]:
    with db.connection() as conn:
        return conn.execute("SELECT * FROM outbox WHERE id = %s", (item_id,)).fetchone()


def lease_to(db, token: str, now: datetime) -> list[int]:
    with db.connection() as conn, conn.transaction():
        claimed = outbox.claim(conn, channel="telegram", now=now)
        outbox.lease(conn, [item.id for item in claimed], until=now + LEASE, token=token)
    return [item.id for item in claimed]


def test_a_settle_under_a_lost_lease_changes_nothing(db) -> None:
    """A leased the row; its lease ran out and B leased it. Every change A still tries (confirm, progress,
    delivered, failed, deferred, dropped, dead, holding it) matches nothing and leaves the row exactly as B
    has it; B's own settle goes through."""
    item_id = post(db, "the weekly digest")
    a, b = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
    assert lease_to(db, a, T0) == [item_id]
    assert lease_to(db, b, T0 + LEASE + timedelta(seconds=1)) == [item_id]
    before = snapshot(db, item_id)
    later = T0 + timedelta(minutes=5)
    with db.connection() as conn, conn.transaction():
        assert outbox.confirm(conn, item_id, token=a, until=later) is None
        assert not outbox.save_progress(conn, item_id, token=a, progress={"message_ids": [1]}, until=later)
        assert not outbox.mark_delivered(conn, item_id, ref={"message_id": 1}, token=a)
        assert not outbox.mark_failed(conn, item_id, error="boom", attempts=0, now=later, token=a)
        assert not outbox.mark_deferred(conn, item_id, reason="429", until=later, token=a)
        assert not outbox.mark_dropped(conn, item_id, reason="gone", token=a)
        assert outbox.mark_dead(conn, item_id, error="boom", now=later, token=a) is None
        outbox.hold(conn, [item_id], until=later, token=a)
    assert snapshot(db, item_id) == before
    with db.connection() as conn, conn.transaction():
        assert outbox.mark_delivered(conn, item_id, ref={"message_id": 2}, token=b)
    after = snapshot(db, item_id)
    assert (after["state"], after["attempts"], after["delivery_ref"]) == ("delivered", 1, {"message_id": 2})
