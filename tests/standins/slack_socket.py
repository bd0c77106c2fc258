"""Slack Socket Mode on 127.0.0.1: apps.connections.open hands out a websocket that pushes envelopes, records acks."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import BaseModel

from tests.standins._server import Call, answer, parse_body
from tests.standins.slack_api import SlackStandIn

EnvelopeType = Literal["slash_commands", "interactive", "events_api"]
DisconnectReason = Literal["refresh_requested", "warning", "link_disabled", "too_many_websockets"]
# Slack's own debug host names look like this; the client only logs them.
_HOST = "applink-opsos-standin"
# Envelopes whose ack may carry a response payload: slash commands, and the interactions that answer in the ack
# (a modal submission's errors, an options menu's choices). A button click's answer goes elsewhere.
_ANSWERED_IN_ACK = {"view_submission", "block_suggestion"}


class Ack(BaseModel):
    """What the app sent back for an envelope: `{"envelope_id": ..., "payload": {...}}`, on which connection."""

    envelope_id: str
    payload: dict[str, Any] | None = None
    connection: int


@dataclass
class _Link:
    number: int
    socket: web.WebSocketResponse
    pings_answered: int = 0
    pongs: list[bytes] = field(default_factory=list)


class SlackSocketStandIn(SlackStandIn):
    """The Web API stand-in plus Socket Mode, served together.

    slack_sdk asks for the websocket URL with `apps.connections.open` on the same Web API `base_url` as every
    other method, so both must answer at `{url}/api/`. `app_token`, when given, is the only app-level token
    that call accepts; otherwise any `xapp-` token is.
    """

    def __init__(self, *, app_token: str | None = None, app_id: str = "A0OPSOS", **web_api: Any) -> None:
        super().__init__(**web_api)
        self.app_token, self.app_id = app_token, app_id
        # Every text frame the app sent, acks included, for a test that wants what `acks()` does not parse.
        self.received: list[str] = []
        self._acks: list[Ack] = []
        self._links: dict[int, _Link] = {}
        self._tickets: set[str] = set()
        self._numbers = itertools.count(1)
        self._socket_lock = threading.Lock()

    def routes(self, app: web.Application) -> None:
        # A plain path wins over `/api/{method}` in aiohttp's router, whichever is added first.
        app.router.add_post("/api/apps.connections.open", self._connections_open)
        app.router.add_get("/link/", self._link)
        app.on_shutdown.append(self._close_links)
        super().routes(app)

    # -- helpers for tests ------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        with self._socket_lock:
            return sum(1 for link in self._links.values() if not link.socket.closed)

    @property
    def connections(self) -> int:
        """How many websockets the app has opened so far, closed ones included."""
        with self._socket_lock:
            return len(self._links)

    def acks(self, envelope_id: str | None = None) -> list[Ack]:
        """Acks received, oldest first; a redelivered envelope is acked once per delivery."""
        with self._socket_lock:
            return [ack for ack in self._acks if envelope_id is None or ack.envelope_id == envelope_id]

    def pings_answered(self) -> int:
        with self._socket_lock:
            return sum(link.pings_answered for link in self._links.values())

    def pongs(self) -> list[bytes]:
        """Payloads of the pongs answering `ping()`, on every connection."""
        with self._socket_lock:
            return [pong for link in self._links.values() for pong in link.pongs]

    def push(
        self,
        kind: EnvelopeType,
        payload: dict[str, Any],
        *,
        envelope_id: str | None = None,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Deliver an envelope on the newest open connection, as Slack does; returns its envelope_id.

        Pass an earlier `envelope_id` (and for events_api a `retry_attempt`) to redeliver what was not acked in time.
        """
        if accepts_response_payload is None:
            accepts_response_payload = kind == "slash_commands" or payload.get("type") in _ANSWERED_IN_ACK
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id or str(uuid.uuid4()),
            "payload": payload,
            "type": kind,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        self.send(envelope)
        return str(envelope["envelope_id"])

    def send(self, message: dict[str, Any]) -> None:
        """Send any JSON message on the newest open connection (an envelope Slack would never send, say)."""
        self.send_raw(json.dumps(message))

    def send_raw(self, data: str | bytes) -> None:
        """Send a text frame (str) or a binary frame (bytes) as is: not even JSON, if a test wants that."""
        link = self._newest()
        if isinstance(data, bytes):
            self._run(link.socket.send_bytes(data))
        else:
            self._run(link.socket.send_str(data))

    def disconnect(self, reason: DisconnectReason = "refresh_requested") -> int:
        """Ask the app to move to a new connection, as Slack does every few hours; returns the old one's number.

        Slack leaves the old socket open until the app has connected again, so this only sends the message.
        """
        link = self._newest()
        self._run(
            link.socket.send_str(json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": _HOST}}))
        )
        return link.number

    def ping(self, data: bytes = b"standin-ping") -> None:
        """A websocket ping from Slack's side; the app must pong it back (recorded in `pongs()`)."""
        self._run(self._newest().socket.ping(data))

    def _newest(self) -> _Link:
        with self._socket_lock:
            live = [link for link in self._links.values() if not link.socket.closed]
        if not live:
            raise AssertionError(f"no open Socket Mode connection (opened so far: {self.connections})")
        return live[-1]

    def _run(self, sending: Any) -> None:
        # Frames go out on the server's own loop; the test's loop keeps running the client meanwhile.
        if self._loop is None:
            raise AssertionError("the stand-in is not started")
        asyncio.run_coroutine_threadsafe(sending, self._loop).result(timeout=10)

    # -- the wire -----------------------------------------------------------------------------------

    async def _connections_open(self, request: web.Request) -> web.Response:
        body = await parse_body(request)
        call = self.record(request, "apps.connections.open", params=body.params)
        return answer(call, *self._issue_ticket(call))

    def _issue_ticket(self, call: Call) -> tuple[int, dict[str, str], dict[str, Any]]:
        header = call.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else call.params.get("token")
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if not str(token).startswith("xapp-"):
            # What Slack answers when a bot token (xoxb-) is used where the app-level token belongs.
            return 200, {}, {"ok": False, "error": "not_allowed_token_type"}
        if self.app_token is not None and token != self.app_token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        failure = self.failures.take("apps.connections.open")
        if failure and failure.kind == "ratelimited":
            return 429, {"Retry-After": str(failure.retry_after)}, {"ok": False, "error": "ratelimited"}
        if failure:
            return 500, {}, {"ok": False, "error": "internal_error"}
        ticket = secrets.token_hex(16)
        with self._socket_lock:
            self._tickets.add(ticket)
        socket_url = "ws" + self.url.removeprefix("http")
        return 200, {}, {"ok": True, "url": f"{socket_url}/link/?ticket={ticket}&app_id={self.app_id}"}

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._socket_lock:
            # A ticket opens one connection; a reconnect must call apps.connections.open again, as on Slack.
            valid = ticket in self._tickets
            self._tickets.discard(ticket)
        if not valid:
            return web.Response(status=401, text="invalid or used ticket")
        # autoping off: Slack's pings and the client's must both be seen, not answered out of sight.
        socket = web.WebSocketResponse(autoping=False)
        await socket.prepare(request)
        with self._socket_lock:
            link = _Link(number=next(self._numbers), socket=socket)
            self._links[link.number] = link
            live = sum(1 for other in self._links.values() if not other.socket.closed)
        await socket.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": live,
                    "debug_info": {"host": _HOST, "build_number": 1, "approximate_connection_time": 18060},
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        async for message in socket:
            if message.type == WSMsgType.PING:
                await socket.pong(message.data)
                with self._socket_lock:
                    link.pings_answered += 1
            elif message.type == WSMsgType.PONG:
                with self._socket_lock:
                    link.pongs.append(message.data)
            elif message.type == WSMsgType.TEXT:
                self._record(link, message.data)
        return socket

    def _record(self, link: _Link, text: str) -> None:
        with self._socket_lock:
            self.received.append(text)
        try:
            message = json.loads(text)
        except ValueError:
            return
        # An ack is the envelope_id alone, or with the response payload when the envelope accepts one.
        if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
            payload = message.get("payload")
            with self._socket_lock:
                self._acks.append(
                    Ack(
                        envelope_id=message["envelope_id"],
                        payload=payload if isinstance(payload, dict) else None,
                        connection=link.number,
                    )
                )

    async def _close_links(self, _app: web.Application) -> None:
        # A client still connected at stop() gets a close frame, as from Slack, not a handler cancelled mid-read.
        with self._socket_lock:
            live = [link.socket for link in self._links.values() if not link.socket.closed]
        for socket in live:
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


__all__ = ["Ack", "EnvelopeType", "SlackSocketStandIn"]
