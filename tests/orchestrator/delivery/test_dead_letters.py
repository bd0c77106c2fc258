"""Dead letters: a row that keeps failing stops being retried, is counted, audited once, announced once on another
route, and `opsos outbox retry-dead` queues it again.

The real python-telegram-bot client talks to the Telegram stand-in; time is injected.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from telegram import Bot

from bot.telegram import TelegramSender
from orchestrator import Message, MessageKind, outbox, views
from orchestrator.delivery import deliver_due
from orchestrator.delivery.dead import bury, notice_address
from tests.orchestrator.helpers import count
from tests.standins import TelegramStandIn

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
TOKEN = "00000000-0000-4000-8000-0000000000aa"
ptb_int_retry_after = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def telegram_sender(telegram_api: TelegramStandIn) -> AsyncIterator[TelegramSender]:
    async with Bot(telegram_api.token, base_url=telegram_api.base_url) as bot:
        yield TelegramSender(bot)


def post(db, title: str, *, channel: str = "telegram", conversation: str = "42") -> int:
    with db.connection() as conn, conn.transaction():
        item_id = outbox.post(conn, channel=channel, conversation=conversation,
                              message=Message(kind=MessageKind.NOTICE, title=title))
        conn.execute("UPDATE outbox SET next_attempt_at = %s WHERE id = %s", (T0, item_id))
    assert item_id is not None
    return item_id


def row(db, item_id: int) -> dict:
    with db.connection() as conn:
        return conn.execute("SELECT * FROM outbox WHERE id = %s", (item_id,)).fetchone()


def events(db, kind: str) -> list[dict]:
    with db.connection() as conn:
        return conn.execute("SELECT * FROM audit_events WHERE kind = %s ORDER BY id", (kind,)).fetchall()


async def test_a_row_failing_past_its_allowance_is_dead_counted_audited_once_and_requeued_on_request(
        db, redis, settings, telegram_api, telegram_sender, database_url, redis_url, tmp_path, monkeypatch,
        capsys) -> None:
    """Proves the dead letter: with three attempts allowed, a message Telegram refuses three times is dead after
    the third, with its last error; later passes never try it again; /metrics and the dashboard count it; one
    `outbox.dead` event records it and one notice waits on the console (the other route). `opsos outbox
    retry-dead` brings it back to pending with a fresh allowance, and the next pass delivers it once."""
    item_id = post(db, "Invoice reminder sent")
    telegram_api.fail_next("sendMessage", times=3)

    async def deliver(at: datetime):
        return await deliver_due(db, channel="telegram", sender=telegram_sender, now=at, max_attempts=3)

    assert (await deliver(T0)).failed == [item_id]
    assert (await deliver(T0 + timedelta(seconds=3))).failed == [item_id]
    assert (await deliver(T0 + timedelta(seconds=10))).dead == [item_id]
    dead = row(db, item_id)
    assert (dead["state"], dead["attempts"]) == ("dead", 3)
    assert "Internal Server Error" in dead["last_error"]
    assert dead["dead_at"] == T0 + timedelta(seconds=10)
    for later in (timedelta(minutes=15), timedelta(days=1)):
        outcome = await deliver(T0 + later)
        assert (outcome.delivered, outcome.failed, outcome.dead) == ([], [], [])
    assert len(telegram_api.calls_to("sendMessage")) == 3

    with db.connection() as conn:
        # The console's 0: the notice about it, waiting there.
        assert views.metrics.snapshot(conn, redis).outbox_dead == {"telegram": 1, "console": 0}
        assert views.overview.overview(conn, settings=settings, now=T0).dead_letters == {"telegram": 1}
    recorded = events(db, "outbox.dead")
    assert len(recorded) == 1
    assert recorded[0]["payload"]["outbox_id"] == item_id and recorded[0]["payload"]["attempts"] == 3
    with db.connection() as conn:
        notices = conn.execute("SELECT * FROM outbox WHERE channel = 'console'").fetchall()
    assert len(notices) == 1 and notices[0]["conversation"] == "console:local"
    assert "Invoice reminder sent" in notices[0]["message"]["title"]
    assert "opsos outbox retry-dead" in notices[0]["message"]["text"]

    from bot.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OPSOS_DATA_DIR", str(tmp_path / "data"))
    assert main(["outbox", "retry-dead"]) == 0
    assert "1 dead message queued again" in capsys.readouterr().out
    again = row(db, item_id)
    assert (again["state"], again["attempts"], again["dead_at"]) == ("pending", 0, None)
    assert [e["payload"]["outbox_id"] for e in events(db, "outbox.requeued")] == [item_id]
    # The requeued row is due from the command's own moment (the wall clock of that process), after T0.
    assert (await deliver(datetime.now(UTC) + timedelta(seconds=1))).delivered == [item_id]
    answered = [call for call in telegram_api.calls_to("sendMessage") if call.status == 200]
    assert [call.params["text"] for call in answered] == ["<b>Invoice reminder sent</b>"]
    assert len(events(db, "outbox.dead")) == 1


@ptb_int_retry_after
async def test_rate_limits_never_count_towards_the_dead_letter(db, telegram_api, telegram_sender) -> None:
    """With a single attempt allowed, five 429s in a row only defer the message: it is still pending, no attempt
    counted, and it goes out once Telegram lets it."""
    item_id = post(db, "Budget at 80 %")
    telegram_api.fail_next("sendMessage", times=5, kind="ratelimited", retry_after=2)
    at = T0
    for _ in range(5):
        assert (await deliver_due(db, channel="telegram", sender=telegram_sender, now=at,
                                  max_attempts=1)).deferred == [item_id]
        at += timedelta(seconds=3)
    assert (row(db, item_id)["state"], row(db, item_id)["attempts"]) == ("pending", 0)
    assert (await deliver_due(db, channel="telegram", sender=telegram_sender, now=at,
                              max_attempts=1)).delivered == [item_id]


async def test_a_dead_notice_that_dies_itself_is_not_announced_again(db, telegram_api, telegram_sender) -> None:
    """The notice about a dead Slack message goes to Telegram (the home channel); when Telegram refuses that too,
    the notice is dead as well, audited, but no third message is queued about it."""
    item_id = post(db, "Weekly digest", channel="slack", conversation="C0OPS")
    with db.connection() as conn, conn.transaction():
        claimed = outbox.claim(conn, channel="slack", now=T0)
        outbox.lease(conn, [item.id for item in claimed], until=T0 + timedelta(minutes=1), token=TOKEN)
    with db.connection() as conn, conn.transaction():
        assert bury(conn, item_id, error="channel_not_found", now=T0, token=TOKEN, home="telegram:42") is not None
    with db.connection() as conn, conn.transaction():
        conn.execute("UPDATE outbox SET next_attempt_at = %s WHERE channel = 'telegram'", (T0,))
    telegram_api.fail_next("sendMessage")
    outcome = await deliver_due(db, channel="telegram", sender=telegram_sender, now=T0, max_attempts=1)
    assert len(outcome.dead) == 1
    assert count(db, "outbox") == 2
    assert len(events(db, "outbox.dead")) == 2


@pytest.mark.parametrize(("home", "failed", "told"), [
    ("slack:C1", "telegram", ("slack", "C1")),
    ("telegram:42", "telegram", ("console", "console:local")),
    (None, "slack", ("console", "console:local")),
    (None, "console", None),
])
def test_the_notice_goes_to_a_route_other_than_the_one_that_failed(db, home, failed, told) -> None:
    """The operator's usual place if it is another channel; else the console; nowhere if the console failed."""
    with db.connection() as conn:
        assert notice_address(conn, home=home, failed_channel=failed) == told
