"""Every copy of an approval's buttons, on every platform, stops offering them once the approval leaves pending.

Slack and Telegram run in one web app, as `opsos serve` runs them, through the real slack-bolt / slack_sdk and
python-telegram-bot clients against the stand-ins; the outbox is the real one in PostgreSQL, delivered by the
real delivery pass. The scene: an approval asked in Slack (its request in #C0OPS) whose buttons also went out
in the daily digest to the operator's Telegram chat.
"""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from slack_sdk.web.async_client import AsyncWebClient
from structlog.testing import capture_logs
from telegram import Bot

from bot.console import ConsoleSession
from bot.server import FrontEnds, build_web_app
from bot.slack import SlackSender, build_app
from bot.telegram import TelegramSender, build_application
from orchestrator import Decision, MessageKind, Operations, Requester, migrations, outbox, scheduler, words
from orchestrator.delivery import Outcome, Sender, deliver_all
from tests.bot.chat_helpers import (
    OPERATORS,
    SLACK_OPERATOR,
    TELEGRAM_OPERATOR,
    eventually,
    slack_buttons,
    slack_text,
    telegram_approval,
    telegram_buttons,
    telegram_message,
)
from tests.conftest import _database_url
from tests.orchestrator.helpers import WINBACK, count, operations, pending_approval, run_state, seed
from tests.standins import SignedRequest, SlackSigner, SlackStandIn, TelegramStandIn
from tests.standins.fixtures import SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET

ME = TELEGRAM_OPERATOR
TELEGRAM_SECRET = "tg-webhook-secret"
CONSOLE = Requester(identity="console:operator", channel="console", conversation="console:local")


@pytest.fixture
def settings(settings, slack_api: SlackStandIn, telegram_api: TelegramStandIn):
    return settings.model_copy(update={
        "operators": OPERATORS, "slack_bot_token": SLACK_BOT_TOKEN, "slack_signing_secret": SLACK_SIGNING_SECRET,
        "slack_api_url": slack_api.api_url, "telegram_bot_token": telegram_api.token,
        "telegram_api_url": telegram_api.base_url, "telegram_webhook_secret": TELEGRAM_SECRET,
    })


@dataclass
class World:
    ops: Operations
    http: TestClient
    slack_api: SlackStandIn
    telegram_api: TelegramStandIn
    senders: dict[str, Sender]
    slack_client: AsyncWebClient
    telegram_bot: Bot

    async def slack(self, request: SignedRequest) -> int:
        response = await self.http.post("/slack/events", data=request.body.encode(), headers=request.headers)
        return response.status

    async def telegram(self, update: dict[str, Any]) -> int:
        response = await self.http.post("/telegram/webhook", json=update,
                                        headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
        return response.status

    async def deliver(self, later: timedelta = timedelta(0)) -> dict[str, Outcome]:
        """One delivery pass over both platforms, as the loop of `opsos serve` runs it, at opsos's clock + `later`."""
        return await deliver_all(self.ops.pool, now=self.ops.services.now() + later, registry=self.senders)


@pytest.fixture
async def world(services, settings, slack_api: SlackStandIn, telegram_api: TelegramStandIn) -> AsyncIterator[World]:
    ops = operations(services)
    bolt = build_app(ops, settings)
    application = build_application(ops, settings, polling=False)
    app = build_web_app(ops, settings, FrontEnds(slack=bolt, telegram=application), deliver=False)
    async with TestClient(TestServer(app)) as http:
        senders: dict[str, Sender] = {"slack": SlackSender(bolt.client), "telegram": TelegramSender(application.bot)}
        yield World(ops=ops, http=http, slack_api=slack_api, telegram_api=telegram_api, senders=senders,
                    slack_client=bolt.client, telegram_bot=application.bot)


@dataclass
class Scene:
    approval_id: str
    request_ts: str
    request_blocks: list[dict[str, Any]]
    digest_id: int


async def ask(world: World, signer: SlackSigner, services, work, *, deliver_digest: bool = True) -> Scene:
    """A request in Slack waits for approval; its request is in #C0OPS, the digest with its buttons in Telegram."""
    seed(services)
    assert await world.slack(signer.slash_command(text=WINBACK)) == 200
    work()
    approval_id = pending_approval(services.stores.pool, 1)
    scheduler.send_digest_now(services, channel="telegram", conversation=str(ME))
    outcomes = await world.deliver() if deliver_digest else {"slack": await _slack_only(world)}
    assert outcomes["slack"].delivered
    request = _slack_request(world)
    assert slack_buttons(request) == [f"approve:{approval_id}", f"reject:{approval_id}", f"why:{approval_id}"]
    digest_id = 0
    if deliver_digest:
        digest = telegram_approval(world.telegram_api)
        assert telegram_buttons(digest) == [f"approve:{approval_id}", f"reject:{approval_id}"]
        digest_id = digest["message_id"]
    return Scene(approval_id=approval_id, request_ts=request["ts"], request_blocks=request["blocks"],
                 digest_id=digest_id)


async def _slack_only(world: World) -> Outcome:
    return (await deliver_all(world.ops.pool, now=world.ops.services.now(),
                              registry={"slack": world.senders["slack"]}))["slack"]


def _slack_request(world: World) -> dict[str, Any]:
    return next(m for m in world.slack_api.messages("C0OPS") if "Approval needed for run #1" in m["text"])


def _digest(world: World, message_id: int) -> dict[str, Any]:
    return telegram_message(world.telegram_api, message_id)


def _edits(db, where: str = "true") -> int:
    return count(db, "outbox", f"kind = 'edit' AND {where}")


async def test_a_slack_click_takes_the_buttons_off_the_slack_request_and_the_telegram_digest(
        world, slack_signer, services, db, work) -> None:
    """Approve clicked in Slack: the Slack request is updated at once from the click, the Telegram digest by the
    next delivery pass; neither keeps a button, both say who approved it and how, the digest keeps its content,
    and each copy is edited exactly once (the loop finds the click's edit settled; another pass sends nothing)."""
    scene = await ask(world, slack_signer, services, work)
    click = slack_signer.block_actions(action_id="approve", value=f"approve:{scene.approval_id}",
                                       message_ts=scene.request_ts, blocks=scene.request_blocks)
    assert await world.slack(click) == 200
    await eventually(lambda: _edits(db, "channel = 'slack' AND state = 'delivered'") == 1)

    request = _slack_request(world)
    assert slack_buttons(request) == [] and "edited" in request
    assert "Approved by slack:U0OPERATOR via slack at" in slack_text(request)
    assert telegram_buttons(_digest(world, scene.digest_id)) == [f"approve:{scene.approval_id}",
                                                                 f"reject:{scene.approval_id}"]

    outcomes = await world.deliver()
    assert outcomes["slack"].delivered == [] and len(outcomes["telegram"].delivered) == 1
    digest = _digest(world, scene.digest_id)
    assert "reply_markup" not in digest and "edit_date" in digest
    assert digest["text"].startswith("<b>Daily digest for") and "Waiting for you" in digest["text"]
    assert f"Approved: {_what(db)} — Approved by slack:U0OPERATOR via slack at" in digest["text"]
    assert run_state(db, 1) == "running"

    assert await world.deliver() == {"slack": Outcome(), "telegram": Outcome()}
    assert len(world.slack_api.calls_to("chat.update")) == 1
    assert len(world.telegram_api.calls_to("editMessageText")) == 1


async def test_a_telegram_click_on_the_digest_takes_the_buttons_off_the_slack_request(
        world, slack_signer, services, db, work) -> None:
    """Rejected from the digest's button in Telegram: the digest is edited at once from the click, and the next
    pass edits the Slack request too; both say it was rejected by telegram:42, neither keeps a button."""
    scene = await ask(world, slack_signer, services, work)
    click = world.telegram_api.push_callback(ME, ME, scene.digest_id, f"reject:{scene.approval_id}")
    assert await world.telegram(click) == 200
    assert world.telegram_api.last("answerCallbackQuery").params["text"].startswith("Rejected:")
    digest = _digest(world, scene.digest_id)
    assert "reply_markup" not in digest and "Rejected by telegram:42 via telegram at" in digest["text"]
    assert slack_buttons(_slack_request(world)) != []

    outcomes = await world.deliver()
    assert len(outcomes["slack"].delivered) == 1 and outcomes["telegram"].delivered == []
    request = _slack_request(world)
    assert slack_buttons(request) == [] and request["blocks"][0]["type"] == "header"
    assert "Rejected by telegram:42 via telegram at" in slack_text(request)
    assert run_state(db, 1) == "cancelled"
    assert len(world.telegram_api.calls_to("editMessageText")) == 1


async def test_approve_typed_in_the_console_updates_the_slack_and_the_telegram_copies(
        world, slack_signer, services, db, work) -> None:
    """A decision typed as text ("approve a1b2…", no button anywhere) queues the edits in its own transaction:
    the next delivery pass takes the buttons off the Slack request and the Telegram digest alike."""
    scene = await ask(world, slack_signer, services, work)
    reply = world.ops.handle_text(CONSOLE, f"approve {scene.approval_id}")
    assert reply.title.startswith("Approved:")
    assert _edits(db, "state = 'pending'") == 2

    outcomes = await world.deliver()
    assert len(outcomes["slack"].delivered) == 1 and len(outcomes["telegram"].delivered) == 1
    request, digest = _slack_request(world), _digest(world, scene.digest_id)
    assert slack_buttons(request) == [] and "reply_markup" not in digest
    assert "Approved by console:operator via console at" in slack_text(request)
    assert "Approved by console:operator via console at" in digest["text"]


async def test_an_approval_past_its_time_loses_its_buttons_on_every_copy(world, slack_signer, services, db,
                                                                         work, settings) -> None:
    """Nobody decides: the first delivery pass after the approval's time queues and sends the edits, and both
    copies say it expired and how to ask again. A click on it afterwards expires the record and changes no copy
    again (its edits were queued once), and the click is answered "nothing changed"."""
    scene = await ask(world, slack_signer, services, work)
    assert await world.deliver(later=settings.approval_ttl - timedelta(minutes=1)) == {
        "slack": Outcome(), "telegram": Outcome()}

    later = settings.approval_ttl + timedelta(minutes=1)
    outcomes = await world.deliver(later=later)
    assert len(outcomes["slack"].delivered) == 1 and len(outcomes["telegram"].delivered) == 1
    request, digest = _slack_request(world), _digest(world, scene.digest_id)
    assert slack_buttons(request) == [] and "reply_markup" not in digest
    assert f"Expired: {_what(db)}" in slack_text(request) and "say “resume 1” to ask again" in digest["text"]

    start = services.now()
    services.clock = lambda: start + later
    click = slack_signer.block_actions(action_id="approve", value=f"approve:{scene.approval_id}",
                                       message_ts=scene.request_ts)
    await world.slack(click)
    [notice] = await eventually(lambda: world.slack_api.ephemeral("C0OPS"))
    assert notice["text"].startswith("Nothing changed:") and "this approval expired at" in notice["text"]
    assert count(db, "approvals", "state = 'expired'") == 1 and run_state(db, 1) == "awaiting_approval"
    assert _edits(db) == 2 and await world.deliver(later=later) == {"slack": Outcome(), "telegram": Outcome()}
    assert len(world.slack_api.calls_to("chat.update")) == 1
    assert len(world.telegram_api.calls_to("editMessageText")) == 1


async def test_a_failed_edit_is_retried_with_backoff_and_lands(world, slack_signer, services, db, work) -> None:
    """Slack answers chat.update with a 500 once: the edit stays pending with an attempt and a backoff (not sent
    again before it is due), is sent on the next due pass, and the request ends up decided, edited once."""
    scene = await ask(world, slack_signer, services, work)
    world.ops.handle_text(CONSOLE, f"approve {scene.approval_id}")
    world.slack_api.fail_next("chat.update")

    outcomes = await world.deliver()
    assert len(outcomes["slack"].failed) == 1 and len(outcomes["telegram"].delivered) == 1
    with db.connection() as conn:
        edit = conn.execute("SELECT state, attempts, last_error, next_attempt_at - now() AS wait FROM outbox"
                            " WHERE kind = 'edit' AND channel = 'slack'").fetchone()
    assert (edit["state"], edit["attempts"]) == ("pending", 1) and "internal_error" in edit["last_error"]
    assert edit["wait"] > timedelta(seconds=1)
    assert slack_buttons(_slack_request(world)) != []

    assert (await world.deliver())["slack"] == Outcome()  # not yet due
    assert len((await world.deliver(later=timedelta(seconds=5)))["slack"].delivered) == 1
    assert slack_buttons(_slack_request(world)) == []
    assert [call.status for call in world.slack_api.calls_to("chat.update")] == [500, 200]


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # PTB's own int retry_after
async def test_a_rate_limited_edit_waits_as_long_as_the_platform_asked(world, slack_signer, services, db,
                                                                       work) -> None:
    """Telegram answers the edit 429 with retry_after 30: the edit is deferred 30 s without an attempt counted,
    is not sent at +10 s, and lands at +31 s, as a post would."""
    scene = await ask(world, slack_signer, services, work)
    world.ops.handle_text(CONSOLE, f"approve {scene.approval_id}")
    world.telegram_api.fail_next("editMessageText", kind="ratelimited", retry_after=30)

    assert len((await world.deliver())["telegram"].deferred) == 1
    with db.connection() as conn:
        edit = conn.execute("SELECT state, attempts FROM outbox WHERE kind = 'edit' AND channel = 'telegram'"
                            ).fetchone()
    assert (edit["state"], edit["attempts"]) == ("pending", 0)
    assert (await world.deliver(later=timedelta(seconds=10)))["telegram"] == Outcome()
    assert len((await world.deliver(later=timedelta(seconds=31)))["telegram"].delivered) == 1
    assert "reply_markup" not in _digest(world, scene.digest_id)
    assert [call.status for call in world.telegram_api.calls_to("editMessageText")] == [429, 200]


async def test_an_edit_of_a_deleted_message_is_dropped_with_a_log_not_retried(world, slack_signer, services, db,
                                                                            work) -> None:
    """The operator deleted the Slack request and the Telegram digest before deciding: Slack answers
    message_not_found, Telegram "message to edit not found". Each edit is settled as dropped with a warning,
    and no later pass, even an hour on, asks the platforms again."""
    scene = await ask(world, slack_signer, services, work)
    await world.slack_client.chat_delete(channel="C0OPS", ts=scene.request_ts)
    await world.telegram_bot.delete_message(chat_id=ME, message_id=scene.digest_id)
    world.ops.handle_text(CONSOLE, f"approve {scene.approval_id}")

    with capture_logs() as logs:
        outcomes = await world.deliver()
    assert len(outcomes["slack"].dropped) == 1 and len(outcomes["telegram"].dropped) == 1
    dropped = [entry for entry in logs if entry["event"] == "outbox.edit_dropped"]
    assert {entry["channel"] for entry in dropped} == {"slack", "telegram"}
    assert all(entry["log_level"] == "warning" for entry in dropped)
    assert "message_not_found" in next(e["reason"] for e in dropped if e["channel"] == "slack")
    assert "message to edit not found" in next(e["reason"] for e in dropped if e["channel"] == "telegram").lower()
    assert _edits(db, "state = 'dropped'") == 2

    for later in (timedelta(seconds=5), timedelta(minutes=10), timedelta(hours=1)):
        assert await world.deliver(later=later) == {"slack": Outcome(), "telegram": Outcome()}
    assert len(world.slack_api.calls_to("chat.update")) == 1
    assert len(world.telegram_api.calls_to("editMessageText")) == 1


async def test_a_copy_still_undelivered_when_the_decision_lands_goes_out_without_live_buttons(
        world, slack_signer, services, db, work) -> None:
    """The digest is still queued for Telegram (not delivered) when Approve is clicked in Slack: it goes out
    already showing the decision and without a keyboard, and its queued edit is then settled without a call,
    so the copy is never shown with live buttons and never edited into a second state."""
    scene = await ask(world, slack_signer, services, work, deliver_digest=False)
    click = slack_signer.block_actions(action_id="approve", value=f"approve:{scene.approval_id}",
                                       message_ts=scene.request_ts, blocks=scene.request_blocks)
    await world.slack(click)
    await eventually(lambda: _edits(db, "channel = 'slack' AND state = 'delivered'") == 1)
    assert world.telegram_api.sent(ME) == [] and _edits(db, "channel = 'telegram' AND state = 'pending'") == 1

    assert len((await world.deliver())["telegram"].delivered) == 1  # the digest; its edit waits for it
    [digest] = [m for m in world.telegram_api.sent(ME) if m.get("text")]
    assert "reply_markup" not in digest and "edit_date" not in digest
    assert "Approved by slack:U0OPERATOR via slack at" in digest["text"]

    assert len((await world.deliver())["telegram"].delivered) == 1  # the edit, settled: the copy shows it
    assert _edits(db, "channel = 'telegram' AND state = 'delivered' AND delivery_ref ? 'skipped'") == 1
    assert world.telegram_api.calls_to("editMessageText") == []


async def test_a_digest_with_two_approvals_loses_each_ones_buttons_as_each_is_decided(
        world, slack_signer, services, db, work) -> None:
    """The digest carries the buttons of two approvals: deciding the first edits it to show that outcome while
    the second's buttons stay live; deciding the second then takes the rest off, both outcomes shown in order."""
    seed(services)
    await world.slack(slack_signer.slash_command(text=WINBACK))
    await world.slack(slack_signer.slash_command(text=WINBACK + " today"))
    work()
    first, second = pending_approval(db, 1), pending_approval(db, 2)
    scheduler.send_digest_now(services, channel="telegram", conversation=str(ME))
    await world.deliver()
    digest_id = telegram_approval(world.telegram_api)["message_id"]
    assert telegram_buttons(_digest(world, digest_id)) == [f"approve:{first}", f"reject:{first}",
                                                            f"approve:{second}", f"reject:{second}"]

    world.ops.handle_text(CONSOLE, f"approve {first}")
    await world.deliver()
    digest = _digest(world, digest_id)
    assert telegram_buttons(digest) == [f"approve:{second}", f"reject:{second}"]
    assert "Approved by console:operator" in digest["text"] and "Rejected" not in digest["text"]

    world.ops.handle_text(CONSOLE, f"reject {second}")
    await world.deliver()
    digest = _digest(world, digest_id)
    assert "reply_markup" not in digest
    assert digest["text"].index("Approved by console:operator") < digest["text"].index("Rejected by console:operator")
    assert len(world.telegram_api.calls_to("editMessageText")) == 2


async def test_the_console_prints_an_outcome_decided_elsewhere_once_and_its_own_decision_once(
        world, services, db, work) -> None:
    """The console cannot edit what it printed: a decision the Slack operator made on an approval the console
    showed is printed there as one outcome line; one typed in the console itself is printed once, as its reply."""
    seed(services)
    lines: list[str] = []
    session = ConsoleSession(world.ops, identity="console:operator", conversation="console:local",
                             write=lines.append)
    session.say(WINBACK)
    session.say(WINBACK + " now")
    work()
    shown = session.deliver_pending()
    asked = [m.approval_id for m in shown if m.kind is MessageKind.APPROVAL_REQUEST]
    assert len(asked) == 2

    slack_operator = Requester(identity=f"slack:{SLACK_OPERATOR}", channel="slack", conversation="C0OPS")
    world.ops.decide(slack_operator, asked[0], Decision.APPROVED)
    session.say(f"reject {asked[1]}")
    printed = session.deliver_pending()
    assert [m.approval_id for m in printed] == [asked[0]]
    assert printed[0].text.startswith("Approved by slack:U0OPERATOR via slack at")
    assert sum(line.startswith("opsos ▸ Rejected:") for line in lines) == 1
    assert _edits(db, "channel = 'console' AND state = 'delivered'") == 2


def _what(db) -> str:
    with db.connection() as conn:
        return conn.execute("SELECT request->>'what' AS what FROM approvals").fetchone()["what"]


def test_copies_queued_before_the_upgrade_are_found_by_their_buttons(pg_admin_url, monkeypatch) -> None:
    """A database made before copies were tracked: the migration reads each queued row's buttons, so an approval
    asked before the upgrade still has its request and its digest found (and edited) when it is decided after."""
    name = f"copies_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _database_url(pg_admin_url, name)
    current = migrations.COMPONENTS
    tracked = next(i for i, sql in enumerate(current["orchestrator"]) if "approval_buttons" in sql)
    older = {component: steps[:tracked] if component == "orchestrator" else steps
             for component, steps in current.items()}
    request = words.approval_actions("a0123456789")
    digest = (words.digest_approval_actions("a0123456789", 7) + words.run_actions(8)
              + words.digest_approval_actions("a000000000f", 9))
    monkeypatch.setattr(migrations, "COMPONENTS", older)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        migrations.migrate(conn)
        for actions in (request, digest, []):
            message = {"kind": "report", "title": "t", "actions": [a.model_dump(mode="json") for a in actions]}
            conn.execute("INSERT INTO outbox (channel, conversation, kind, message) VALUES ('slack', 'C0OPS', "
                         "'report', %s)", (Jsonb(message),))
        conn.commit()
    monkeypatch.setattr(migrations, "COMPONENTS", current)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        assert ("orchestrator", tracked + 1) in migrations.migrate(conn)
        rows = conn.execute("SELECT approval_buttons FROM outbox ORDER BY id").fetchall()
        assert [r["approval_buttons"] for r in rows] == [["a0123456789"], ["a0123456789", "a000000000f"], []]
        assert [c.id for c in outbox.copies(conn, "a0123456789")] == [1, 2]
