"""The Slack front end: slack-bolt AsyncApp events in, orchestrator calls out; outbox rows sent as Block Kit.

Bolt runs on the aiohttp event loop; every orchestrator call is blocking database work, so it runs in
a thread (asyncio.to_thread) and the loop stays free to acknowledge other requests within 3 seconds.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond, AsyncSay
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import ConfigurationError
from bot.render.blockkit import BlockKitRenderer
from bot.slack_sender import SlackSender, client
from orchestrator import (
    STORES_UNAVAILABLE,
    Message,
    Operations,
    Requester,
    Settings,
    buttons,
    deliver_due,
    words,
)

log = structlog.get_logger(__name__)

CHANNEL = "slack"
# Slack gives a slash command 3 s; past this the ack says "noted" and the real reply follows via response_url.
ACK_BUDGET_SECONDS = 1.5
# Orchestrator calls in flight at once, as many as the database pool has connections: more threads would only
# wait for a connection while contending for the GIL with the event loop, which must stay free to ack.
MAX_CONCURRENT_CALLS = 8
# An event or a click is acked before it is handled (Slack sends it again only when the ack failed), so a
# database restart under its handler would lose it: the handler tries again after these waits, about two minutes
# in all, then tells the operator to send it again.
STORE_RETRY_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
_MENTION = re.compile(r"^\s*<@[A-Z0-9]+>\s*")
_BUTTONS = re.compile("^(" + "|".join(verb.value for verb in buttons.Verb) + ")$")

renderer = BlockKitRenderer()
T = TypeVar("T")


def requester(user_id: str, channel_id: str) -> Requester:
    # Slack's direct-message conversations are the ones whose id starts with D.
    return Requester(identity=f"{CHANNEL}:{user_id}", channel=CHANNEL, conversation=channel_id,
                     private=channel_id.startswith("D"))


def build_app(ops: Operations, settings: Settings, *, web_client: AsyncWebClient | None = None) -> AsyncApp:
    """The bolt app with opsos's listeners: /ops, DMs, app mentions and the approval buttons."""
    app = AsyncApp(signing_secret=settings.slack_signing_secret or "", client=web_client or client(settings))
    SlackAdapter(ops).attach(app, command=settings.slack_command)
    return app


class SlackAdapter:
    """The listeners: each turns a Slack payload into one orchestrator call and renders the answer."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_CALLS)
        self.retry_waits: tuple[float, ...] = STORE_RETRY_WAITS

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking orchestrator call in a thread, queueing (cheaply, on the loop) when all slots are busy."""
        async with self._slots:
            return await asyncio.to_thread(function, *args, **kwargs)

    async def call_acked(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`call` for what Slack was already told arrived: our stores being away is waited out, not a loss.

        Raises the last error once the waits are spent. Only for calls a second time does nothing more than the
        first, since the error may have come after the first committed (its answer lost): a read, a request whose
        intent carries the event's dedupe key (`Operations.repeatable`), a decision (the same operator's repeat is
        answered as its success).
        """
        for wait in self.retry_waits:
            try:
                return await self.call(function, *args, **kwargs)
            except STORES_UNAVAILABLE as error:
                log.warning("slack.stores_unavailable", call=getattr(function, "__name__", "?"), retry_in=wait,
                            error=f"{type(error).__name__}: {error}")
                await asyncio.sleep(wait)
        return await self.call(function, *args, **kwargs)

    def attach(self, app: AsyncApp, *, command: str) -> None:
        app.command(command)(self.on_command)
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.action(_BUTTONS)(self.on_button)

    async def on_command(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        who = requester(command["user_id"], command["channel_id"])
        key = f"slack:{command['trigger_id']}" if command.get("trigger_id") else None
        work = asyncio.ensure_future(self.call(self.ops.handle_text, who, command.get("text", ""), dedupe_key=key))
        try:
            reply = await asyncio.wait_for(asyncio.shield(work), ACK_BUDGET_SECONDS)
        except TimeoutError:
            # The intent is still being written; answer Slack in time and send the real reply when it is.
            await ack(**renderer.render(message=words.still_working()).as_kwargs())
            reply = await work
            await respond(**renderer.render(message=reply).as_kwargs(), response_type="ephemeral",
                          replace_original=False)
            return
        await ack(**renderer.render(message=reply).as_kwargs())

    async def on_mention(self, event: dict[str, Any], body: dict[str, Any], say: AsyncSay) -> None:
        await self._request(event, body, say, _MENTION.sub("", event.get("text", "")))

    async def on_message(self, event: dict[str, Any], body: dict[str, Any], say: AsyncSay) -> None:
        # Only direct messages: in channels, opsos answers when mentioned (on_mention), not to every line.
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        await self._request(event, body, say, event.get("text", ""))

    async def _request(self, event: dict[str, Any], body: dict[str, Any], say: AsyncSay, text: str) -> None:
        who = requester(event["user"], event["channel"])
        key = f"slack:{body['event_id']}"
        repeatable = self.ops.repeatable(text, dedupe_key=key)
        # Slack redelivers an event (X-Slack-Retry-Num) it thinks we missed: the first copy already made the intent.
        try:
            if await self.call_acked(self.ops.seen, key):
                log.info("slack.event_redelivered", event_id=body["event_id"])
                return
            handle = self.call_acked if repeatable else self.call
            reply = await handle(self.ops.handle_text, who, text, dedupe_key=key)
        except STORES_UNAVAILABLE:
            # A command the key does not make once (pause, remember, digest…) is not tried again: its error may
            # have come after it was done, and the operator, told so, checks before sending it again.
            log.error("slack.event_lost", event_id=body["event_id"], user=event["user"], retried=repeatable)
            reply = words.stores_unavailable() if repeatable else words.stores_unavailable_unsure()
        await say(**renderer.render(message=reply).as_kwargs())

    async def on_button(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                        client: AsyncWebClient) -> None:
        await ack()
        user_id = body["user"]["id"]
        channel_id = (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id", "")
        who = requester(user_id, channel_id)
        pressed = buttons.read(action.get("value"))
        if pressed is None or pressed.verb.value != action.get("action_id"):
            await self._ephemeral(client, channel_id, user_id, words.unknown_button())
            return
        if pressed.decision is None:
            reply = await self.call(self.ops.handle_text, who, pressed.as_text())
            await self._ephemeral(client, channel_id, user_id, reply)
            return
        approval_id = pressed.argument
        try:
            decided = await self.call_acked(self.ops.decide, who, approval_id, pressed.decision)
        except STORES_UNAVAILABLE:
            log.error("slack.click_lost", approval=approval_id, user=user_id)
            await self._ephemeral(client, channel_id, user_id, words.stores_unavailable())
            return
        if decided.updated is not None:
            # Also on a second click: a stale copy still showing buttons now shows the decision.
            original = (body.get("message") or {}).get("blocks") or []
            await self.update_in_place(client, approval_id, decided.updated, clicked=_clicked(body),
                                       original=original)
        if not decided.changed:
            await self._ephemeral(client, channel_id, user_id, decided.reply)

    async def update_in_place(self, client: AsyncWebClient, approval_id: str, updated: Message,
                              clicked: tuple[str, str] | None, original: list[dict[str, Any]] | None = None) -> None:
        """Show the decision on the Slack copies now, from the click, rather than a delivery pass later.

        The copies' edits were queued with the decision; they are sent here through the outbox's own path
        (claimed, sent, settled), so the delivery loop finds them done and no copy is edited twice. A clicked
        message opsos has no record of (no copy of it in the outbox) has no queued edit: it is updated here,
        its content kept when the click carried it, the buttons gone.
        """
        sender = SlackSender(client)
        try:
            settings = self.ops.services.settings
            await deliver_due(self.ops.pool, channel=CHANNEL, sender=sender, now=self.ops.services.now(),
                              clock=self.ops.services.now, approval_id=approval_id,
                              max_attempts=settings.outbox_max_attempts, home=settings.home_channel)
        except Exception as error:  # the database away: the queued edits stay for the delivery loop
            log.warning("slack.update_deferred", approval=approval_id, error=str(error))
        if clicked is None:
            return
        copies = await self.call(self.ops.approval_messages, approval_id)
        known = {((item.delivery_ref or {}).get("channel"), (item.delivery_ref or {}).get("ts"))
                 for item in copies if item.channel == CHANNEL}
        if clicked in known:
            return
        channel_id, ts = clicked
        try:
            await client.chat_update(channel=channel_id, ts=ts,
                                     **renderer.decided(original=original or [], message=updated).as_kwargs())
        except SlackApiError as error:
            # A deleted message or a lost channel must not fail the click: the decision is recorded.
            log.warning("slack.update_failed", channel=channel_id, ts=ts, error=str(error))

    async def _ephemeral(self, client: AsyncWebClient, channel_id: str, user_id: str, message: Message) -> None:
        try:
            await client.chat_postEphemeral(channel=channel_id, user=user_id,
                                            **renderer.render(message=message).as_kwargs())
        except SlackApiError as error:
            log.warning("slack.ephemeral_failed", channel=channel_id, error=str(error))


def _clicked(body: dict[str, Any]) -> tuple[str, str] | None:
    container = body.get("container") or {}
    if container.get("is_ephemeral") or not container.get("message_ts"):
        return None
    return container["channel_id"], container["message_ts"]


def reread_form_body(bolt_request: AsyncBoltRequest) -> None:
    """Give back a slash command whose text says "payload" the body bolt lost.

    bolt takes any form body containing the substring "payload" for an interaction and, finding no
    `payload` field, reads it as empty, so "/ops check the payload of the webhook" would vanish.
    """
    raw = bolt_request.raw_body
    if bolt_request.body or "payload" not in raw or raw.lstrip().startswith("{"):
        return
    form = dict(parse_qsl(raw, keep_blank_values=True))
    if form and "payload" not in form:
        bolt_request.body = form
        bolt_request.context = build_async_context(AsyncBoltContext({}), form)


def events_endpoint(app: AsyncApp, signing_secret: str) -> Any:
    """The aiohttp handler for /slack/events: 401 before anything is parsed, 400 for a body bolt cannot read."""
    verifier = SignatureVerifier(signing_secret)

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.text()
        if not verifier.is_valid(body, request.headers.get("X-Slack-Request-Timestamp"),
                                 request.headers.get("X-Slack-Signature")):
            log.warning("slack.request_refused", reason="bad signature or stale timestamp")
            return web.json_response({"error": "invalid signature"}, status=401)
        try:
            bolt_request = AsyncBoltRequest(body=body, query=request.query_string, headers=dict(request.headers))
        except ValueError:
            return web.json_response({"error": "malformed body"}, status=400)
        reread_form_body(bolt_request)
        if not isinstance(bolt_request.body, dict) or not bolt_request.body:
            return web.json_response({"error": "malformed body"}, status=400)
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    return handle


async def start_socket_mode(app: AsyncApp, app_token: str) -> Any:
    """Socket Mode: Slack pushes the same payloads over a websocket; no public URL needed. Returns the handler.

    The websocket URL comes from apps.connections.open on the app's own Web API client, so `slack_api_url`
    applies. Close the handler with `close_async()`. Raises ConfigurationError when Slack refuses `app_token`.
    """
    import aiohttp
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler


    refused = {"not_authed", "invalid_auth", "not_allowed_token_type", "account_inactive", "token_revoked",
               "token_expired", "missing_scope"}
    handler = AsyncSocketModeHandler(app, app_token)
    try:
        # The first URL is asked for here, once: slack_sdk's connect() retries a refused token every 10 s forever,
        # so `opsos serve` would hang before it listens. Slack failing or out of reach is a passing state, left to
        # that retry loop as before.
        handler.client.wss_uri = await handler.client.issue_new_wss_url()
    except SlackApiError as error:
        reason = error.response.get("error")
        if reason in refused:
            await handler.close_async()
            raise ConfigurationError(f"Slack refused OPSOS_SLACK_APP_TOKEN ({reason}): Socket Mode needs the "
                                     "app-level token (xapp-…) with the connections:write scope") from error
        log.warning("slack.socket_url_failed", error=reason)
    except (aiohttp.ClientError, OSError) as error:
        log.warning("slack.socket_url_failed", error=str(error))
    await handler.connect_async()
    return handler


__all__ = ["CHANNEL", "SlackAdapter", "SlackSender", "build_app", "client", "events_endpoint", "requester",
           "start_socket_mode"]
