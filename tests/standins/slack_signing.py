"""Requests signed the way Slack signs them: slash commands, Events API callbacks and button clicks."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel


class SignedRequest(BaseModel):
    """A body and the headers Slack would send with it; `payload` is the same data parsed."""

    body: str
    headers: dict[str, str]
    payload: dict[str, Any]
    response_id: str | None = None

    def post(self, url: str, *, timeout: float = 10.0) -> tuple[int, str]:
        """POST to an app under test; returns (status, body text) whatever the status."""
        request = urllib.request.Request(url, data=self.body.encode(), headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def signature(signing_secret: str, timestamp: str, body: str) -> str:
    """Slack's v0 signature: HMAC-SHA256 of `v0:{timestamp}:{body}` keyed with the signing secret."""
    digest = hmac.new(signing_secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


class SlackSigner:
    """Builds what Slack POSTs to an app. response_urls point at `response_base` (the Slack stand-in's url).

    `clock` is injected so a test can make a request look stale (bolt refuses those older than 5 minutes).
    """

    def __init__(
        self,
        signing_secret: str,
        *,
        response_base: str,
        team_id: str = "T0OPSOS",
        team_domain: str = "opsos-test",
        bot_user_id: str = "U0OPSBOT",
        api_app_id: str = "A0OPSOS",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signing_secret, self.response_base = signing_secret, response_base.rstrip("/")
        self.team_id, self.team_domain, self.bot_user_id = team_id, team_domain, bot_user_id
        self.api_app_id, self.clock = api_app_id, clock
        self._ids = itertools.count(1)

    def sign(
        self,
        body: str,
        *,
        content_type: str,
        payload: dict[str, Any],
        timestamp: int | None = None,
        response_id: str | None = None,
    ) -> SignedRequest:
        stamp = str(int(self.clock()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature(self.signing_secret, stamp, body),
        }
        return SignedRequest(body=body, headers=headers, payload=payload, response_id=response_id)

    def _response(self) -> tuple[str, str]:
        response_id = f"r{next(self._ids)}"
        return response_id, f"{self.response_base}/response/{response_id}"

    def slash_command(
        self,
        *,
        text: str,
        command: str = "/ops",
        user_id: str = "U0OPERATOR",
        user_name: str = "operator",
        channel_id: str = "C0OPS",
        channel_name: str = "ops",
        timestamp: int | None = None,
    ) -> SignedRequest:
        response_id, response_url = self._response()
        form = {
            "token": "verification-token",
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{next(self._ids)}.{self.team_id}.trigger",
        }
        return self.sign(
            urlencode(form),
            content_type="application/x-www-form-urlencoded",
            payload=form,
            timestamp=timestamp,
            response_id=response_id,
        )

    def event(
        self, event: dict[str, Any], *, event_id: str | None = None, timestamp: int | None = None
    ) -> SignedRequest:
        """An Events API `event_callback`; pass the same `event_id` twice to test a redelivery."""
        now = int(self.clock())
        payload = {
            "token": "verification-token",
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):08d}",
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        return self.sign(json.dumps(payload), content_type="application/json", payload=payload, timestamp=timestamp)

    def message_event(
        self,
        *,
        text: str,
        user_id: str = "U0OPERATOR",
        channel: str = "C0OPS",
        channel_type: str = "channel",
        ts: str | None = None,
        thread_ts: str | None = None,
        event_id: str | None = None,
        timestamp: int | None = None,
    ) -> SignedRequest:
        event: dict[str, Any] = {
            "type": "message",
            "user": user_id,
            "text": text,
            "channel": channel,
            "channel_type": channel_type,
            "ts": ts or self._ts(),
            "team": self.team_id,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        event["event_ts"] = event["ts"]
        return self.event(event, event_id=event_id, timestamp=timestamp)

    def app_mention(
        self,
        *,
        text: str,
        user_id: str = "U0OPERATOR",
        channel: str = "C0OPS",
        ts: str | None = None,
        event_id: str | None = None,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """`text` follows the mention: the event text is `<@BOT> text`, as Slack sends it."""
        stamp = ts or self._ts()
        event = {
            "type": "app_mention",
            "user": user_id,
            "text": f"<@{self.bot_user_id}> {text}",
            "channel": channel,
            "ts": stamp,
            "event_ts": stamp,
            "team": self.team_id,
        }
        return self.event(event, event_id=event_id, timestamp=timestamp)

    def block_actions(
        self,
        *,
        action_id: str,
        value: str,
        message_ts: str,
        channel_id: str = "C0OPS",
        blocks: list[dict[str, Any]] | None = None,
        block_id: str = "actions",
        user_id: str = "U0OPERATOR",
        user_name: str = "operator",
        message_text: str = "",
        timestamp: int | None = None,
    ) -> SignedRequest:
        """A button click on the message at `message_ts`; pass that message's `blocks` as Slack would."""
        response_id, response_url = self._response()
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": self.team_id},
            "api_app_id": self.api_app_id,
            "token": "verification-token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": False,
            },
            "trigger_id": f"{next(self._ids)}.{self.team_id}.trigger",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": "ops"},
            "message": {
                "type": "message",
                "user": self.bot_user_id,
                "ts": message_ts,
                "text": message_text,
                "blocks": blocks or [],
            },
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "value": value,
                    "type": "button",
                    "text": {"type": "plain_text", "text": value},
                    "action_ts": self._ts(),
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)})
        return self.sign(
            body,
            content_type="application/x-www-form-urlencoded",
            payload=payload,
            timestamp=timestamp,
            response_id=response_id,
        )

    def url_verification(self, challenge: str = "challenge-token") -> SignedRequest:
        payload = {"token": "verification-token", "challenge": challenge, "type": "url_verification"}
        return self.sign(json.dumps(payload), content_type="application/json", payload=payload)

    def _ts(self) -> str:
        # Unique even under a frozen clock: the counter fills the microseconds.
        return f"{int(self.clock())}.{next(self._ids) % 1_000_000:06d}"
