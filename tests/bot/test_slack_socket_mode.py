"""Slack Socket Mode through the real bolt handler and slack_sdk client, against a local Socket Mode stand-in."""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from structlog.testing import capture_logs

from bot.errors import ConfigurationError
from bot.slack import SlackSender, build_app, start_socket_mode
from orchestrator import Operations
from tests.bot.chat_helpers import OPERATORS, deliver, eventually, queued_jobs, slack_approval, slack_copy_decided
from tests.orchestrator.helpers import WINBACK, count, operations, pending_approval, run_state, seed
from tests.standins import SlackSigner
from tests.standins.fixtures import SLACK_BOT_TOKEN
from tests.standins.slack_socket import Ack, SlackSocketStandIn

APP_TOKEN = "xapp-1-A0OPSOS-1-opsos-test-app-token"


@pytest.fixture
def slack_api() -> Iterator[SlackSocketStandIn]:
    """The Web API stand-in with Socket Mode: the socket client asks the same base_url for its websocket."""
    with SlackSocketStandIn(token=SLACK_BOT_TOKEN, app_token=APP_TOKEN) as server:
        yield server


@pytest.fixture
def settings(settings, slack_api: SlackSocketStandIn):
    # No signing secret: in Socket Mode nothing reaches us over HTTP, so there is nothing to verify.
    return settings.model_copy(update={
        "operators": OPERATORS, "slack_bot_token": SLACK_BOT_TOKEN, "slack_app_token": APP_TOKEN,
        "slack_mode": "socket", "slack_api_url": slack_api.api_url,
    })


@dataclass
class SocketWorld:
    ops: Operations
    api: SlackSocketStandIn
    signer: SlackSigner
    sender: SlackSender

    def command(self, text: str, **fields: str) -> str:
        """Push `/ops text` as Slack does in Socket Mode: the slash command's form fields as the payload."""
        return self.api.push("slash_commands", self.signer.slash_command(text=text, **fields).payload)

    async def acked(self, envelope_id: str, times: int = 1) -> list[Ack]:
        """The acks of `envelope_id` once there are `times` of them: one per delivery of it."""
        return await _acked(self.api, envelope_id, times)

    async def deliver(self) -> Any:
        return await deliver(self.ops.pool, "slack", self.sender)


async def _acked(api: SlackSocketStandIn, envelope_id: str, times: int = 1) -> list[Ack]:
    await eventually(lambda: len(api.acks(envelope_id)) >= times)
    return api.acks(envelope_id)


def _socket_tasks() -> list[asyncio.Task[Any]]:
    # The socket client's own tasks, by coroutine name: a leak is one of these still pending after close.
    names = ("process_messages", "monitor_current_session", "receive_messages", "run_message_listeners")
    return [task for task in asyncio.all_tasks()
            if not task.done() and task.get_coro().__qualname__.rsplit(".", 1)[-1] in names]  # type: ignore[union-attr]


async def _close(handler: Any, api: SlackSocketStandIn) -> None:
    """Close the handler as `opsos serve` does on shutdown, and check it left nothing open or running."""
    await handler.close_async()
    await eventually(lambda: api.open_connections == 0)
    # Listeners still running when the client closed must finish; its own loops must be gone, not destroyed later.
    await eventually(lambda: not _socket_tasks())
    assert handler.client.aiohttp_client_session.closed


@pytest.fixture
async def slack(services, settings, slack_api: SlackSocketStandIn,
                slack_signer: SlackSigner) -> AsyncIterator[SocketWorld]:
    ops = operations(services)
    bolt = build_app(ops, settings)
    handler = await start_socket_mode(bolt, settings.slack_app_token or "")
    try:
        await eventually(lambda: slack_api.open_connections == 1)
        yield SocketWorld(ops=ops, api=slack_api, signer=slack_signer, sender=SlackSender(bolt.client))
    finally:
        await _close(handler, slack_api)


async def test_connects_with_the_app_token_and_answers_pings(slack) -> None:
    """The client gets its websocket from apps.connections.open with the xapp- token (not the bot token),
    pings the stand-in and pongs the stand-in's ping: what keeps a real Slack connection alive."""
    opened = slack.api.last("apps.connections.open")
    assert opened.headers["authorization"] == f"Bearer {APP_TOKEN}" and opened.response["ok"] is True
    await eventually(lambda: slack.api.pings_answered() >= 1)
    slack.api.ping(b"slack-side-ping")
    assert await eventually(lambda: slack.api.pongs()) == [b"slack-side-ping"]


async def test_slash_command_over_the_socket_is_acked_with_the_reply_and_makes_one_intent(slack, db, redis) -> None:
    """/ops <request> pushed as a slash_commands envelope is acked on the socket, the ack's payload is the reply,
    and exactly one intent (and one queued run) exists for it."""
    envelope_id = slack.command(WINBACK)
    [ack] = await slack.acked(envelope_id)
    assert ack.connection == 1
    assert ack.payload is not None and ack.payload["text"].startswith("On it: intent #1 → run #1")
    assert count(db, "intents", "requested_by = 'slack:U0OPERATOR' AND channel = 'slack'") == 1
    assert queued_jobs(redis) == 1
    assert not slack.api.responses(), "the reply came in the ack, not through response_url"


async def test_approval_click_over_the_socket_decides_the_approval(slack, services, db, work) -> None:
    """A block_actions click on the approval's Approve button, pushed as an interactive envelope, is acked
    (empty: a click's answer is not the ack) and decides the approval: the run moves on, the buttons go."""
    seed(services)
    await slack.acked(slack.command(WINBACK))
    work()
    assert (await slack.deliver()).delivered
    approval = slack_approval(slack.api)
    approval_id = pending_approval(db, 1)

    click = slack.signer.block_actions(action_id="approve", value=f"approve:{approval_id}",
                                       message_ts=approval["ts"], blocks=approval["blocks"]).payload
    [ack] = await slack.acked(slack.api.push("interactive", click))
    assert ack.payload is None
    await slack_copy_decided(slack.api, approval["ts"], "Approved by slack:U0OPERATOR via slack at")
    assert run_state(db, 1) == "running"
    assert count(db, "audit_events", "kind = 'approval.approved'") == 1


async def test_redelivered_slash_command_envelope_makes_no_second_intent(slack, db, redis) -> None:
    """Slack redelivers an envelope (same envelope_id) whose ack is late, so while the first copy is still being
    handled: both copies are acked, each with a reply naming the same intent, and only one intent exists."""
    payload = slack.signer.slash_command(text=WINBACK).payload
    envelope_id = slack.api.push("slash_commands", payload)
    slack.api.push("slash_commands", payload, envelope_id=envelope_id)
    acks = await slack.acked(envelope_id, times=2)
    # Either copy may win the race to write the intent; the other is told it already exists.
    replies = sorted(ack.payload["text"].split(" → ")[0] for ack in acks if ack.payload)
    assert replies == ["Already on it: that request is intent #1.", "On it: intent #1"]
    assert count(db, "intents") == 1 and queued_jobs(redis) == 1


async def test_redelivered_event_envelope_makes_no_second_intent_or_reply(slack, db, redis) -> None:
    """A DM's events_api envelope redelivered with retry_attempt/retry_reason (the x-slack-retry headers of HTTP
    mode) is acked and dropped as seen: one intent, one reply in the DM."""
    event = slack.signer.message_event(text=WINBACK, channel="D0OPS", channel_type="im", event_id="Ev0SOCKET").payload
    envelope_id = slack.api.push("events_api", event)
    await slack.acked(envelope_id)
    await eventually(lambda: slack.api.messages("D0OPS"))
    with capture_logs() as logs:
        slack.api.push("events_api", event, envelope_id=envelope_id, retry_attempt=1, retry_reason="timeout")
        await slack.acked(envelope_id, times=2)
        await eventually(lambda: any(entry["event"] == "slack.event_redelivered" for entry in logs))
    assert count(db, "intents") == 1 and queued_jobs(redis) == 1
    assert [m["text"].split(" → ")[0] for m in slack.api.messages("D0OPS")] == ["On it: intent #1"]


async def test_malformed_envelopes_do_not_break_the_connection(slack, db) -> None:
    """Frames no handler can use (not JSON, cut-off JSON, binary, an envelope without or with a non-object
    payload, a slash command missing its user and channel) create nothing, and the same connection then
    handles the next good /ops normally: no reconnect, the ack carries the reply."""
    slack.api.send_raw("not json at all")
    slack.api.send_raw('{"envelope_id": "E0CUTOFF", "type": "slash_commands", "payl')
    slack.api.send_raw(b"\x00\x01binary")
    slack.api.send({"type": "slash_commands", "envelope_id": "E0NOPAYLOAD"})
    slack.api.send({"type": "slash_commands", "envelope_id": "E0LIST", "payload": ["not", "an", "object"]})
    slack.api.push("slash_commands", {"command": "/ops", "text": WINBACK}, envelope_id="E0NOUSER")

    envelope_id = slack.command(WINBACK)
    [ack] = await slack.acked(envelope_id)
    assert ack.payload is not None and ack.payload["text"].startswith("On it: intent #1")
    assert count(db, "intents") == 1
    assert (slack.api.connections, slack.api.open_connections) == (1, 1)
    assert len(slack.api.calls_to("apps.connections.open")) == 1


async def test_slack_asking_to_reconnect_moves_to_a_new_connection_and_keeps_serving(slack, db) -> None:
    """A `disconnect` message (Slack refreshes every connection every few hours) makes the client fetch a new URL
    with apps.connections.open, connect again and drop the old socket; the next /ops is acked on the new one."""
    slack.api.disconnect("refresh_requested")
    await eventually(lambda: slack.api.connections == 2 and slack.api.open_connections == 1)
    assert len(slack.api.calls_to("apps.connections.open")) == 2
    [ack] = await slack.acked(slack.command(WINBACK))
    assert ack.connection == 2
    assert ack.payload is not None and ack.payload["text"].startswith("On it: intent #1")
    assert count(db, "intents") == 1


@pytest.mark.parametrize(("token", "reason"), [("xapp-1-A0OPSOS-1-revoked", "invalid_auth"),
                                               (SLACK_BOT_TOKEN, "not_allowed_token_type")])
async def test_refused_app_token_fails_start_up_instead_of_retrying_forever(services, settings, slack_api,
                                                                            token: str, reason: str) -> None:
    """A wrong or bot (xoxb-) token in OPSOS_SLACK_APP_TOKEN stops start-up with a ConfigurationError naming the
    setting and Slack's reason, after one apps.connections.open, leaving no socket or client task behind
    (slack_sdk alone would retry it every 10 s and `opsos serve` would never listen)."""
    bolt = build_app(operations(services), settings)
    with pytest.raises(ConfigurationError, match=re.escape(f"OPSOS_SLACK_APP_TOKEN ({reason})")):
        await asyncio.wait_for(start_socket_mode(bolt, token), timeout=10)
    assert len(slack_api.calls_to("apps.connections.open")) == 1
    assert slack_api.connections == 0
    await eventually(lambda: not _socket_tasks())


async def test_slack_failing_at_start_up_is_retried_until_the_socket_opens(services, settings, slack_api,
                                                                         slack_signer: SlackSigner) -> None:
    """A Slack-side error (HTTP 500) from apps.connections.open is not taken for a bad token: start-up asks again
    and connects, and the socket then serves /ops."""
    slack_api.fail_next("apps.connections.open")
    bolt = build_app(operations(services), settings)
    handler = await start_socket_mode(bolt, APP_TOKEN)
    try:
        assert [call.status for call in slack_api.calls_to("apps.connections.open")] == [500, 200]
        await eventually(lambda: slack_api.open_connections == 1)
        envelope_id = slack_api.push("slash_commands", slack_signer.slash_command(text="help").payload)
        [ack] = await _acked(slack_api, envelope_id)
        assert ack.payload is not None and ack.payload["text"].startswith("Here is what I can do")
    finally:
        await _close(handler, slack_api)
