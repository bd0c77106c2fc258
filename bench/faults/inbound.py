"""What reaches opsos from outside, as the platforms send it: signed Slack requests and Telegram webhook updates.

Every request and every button click is delivered 2-3 times (Slack and Telegram redeliver what they think was
missed; a proxy may too), each copy byte for byte the same. What each copy was answered is kept, so the checks
can tell an accepted request (some copy got a 200) from one opsos never took.
"""
from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.standins import SlackSigner, SlackStandIn, TelegramStandIn

SLACK_OPERATOR = "U0OPERATOR"
SLACK_CHANNEL = "C0OPS"
TELEGRAM_OPERATOR = 42
TELEGRAM_SECRET = "faults-webhook-secret"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# The shipped workflows (orchestrator/workflows WORKFLOWS), asked in words the offline router places with
# confidence: the win-back (approval, emails, charges, compensations), an outreach email (approval, one email),
# the bookkeeping summary and a content draft (no outside action, a report in chat). `{n}` is the request's
# number: a draft's "Ready to publish" message names no run, so two drafts of one topic would read the same.
REQUESTS = (
    ("winback", "grow MRR: launch a win-back campaign to lapsed subscribers"),
    ("outreach_email", "write a personal email to Ana Souza about our new yearly plan"),
    ("bookkeeping_summary", "give me a monthly summary of income and expenses for last month"),
    ("content_post", "draft a blog post about pricing lesson {n} for solo founders"),
)


@dataclass
class Delivery:
    """One inbound request or click and the answers its copies got (None: no answer, the connection failed)."""

    key: str  # the dedupe key opsos derives from it (intake's `dedupe_key`), or the approval id for a click
    platform: str
    what: str
    statuses: list[int | None] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return 200 in self.statuses


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float = 15.0) -> tuple[int | None, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as error:  # refused (the web process is down), reset, timed out
        return None, f"{type(error).__name__}: {error}"


class Inbound:
    """Builds and sends requests and clicks to the web process at `web_url`; keeps every delivery."""

    def __init__(self, web_url: str, slack: SlackStandIn, telegram: TelegramStandIn, signing_secret: str) -> None:
        self.web_url = web_url.rstrip("/")
        self.slack, self.telegram = slack, telegram
        self.signer = SlackSigner(signing_secret, response_base=slack.url, team_id=slack.team_id,
                                  bot_user_id=slack.bot_user_id)
        self.requests: list[Delivery] = []
        self.clicks: list[Delivery] = []
        self._lock = threading.Lock()

    # -- requests -----------------------------------------------------------------------------------

    def request(self, platform: str, text: str) -> tuple[Delivery, bytes, dict[str, str], str]:
        """A new request on `platform` (slack_command, slack_mention or telegram): its record and its copy."""
        if platform == "slack_command":
            signed = self.signer.slash_command(text=text, user_id=SLACK_OPERATOR, channel_id=SLACK_CHANNEL)
            key = f"slack:{signed.payload['trigger_id']}"
            return self._keep(self.requests, key, platform, text), signed.body.encode(), signed.headers, "/slack/events"
        if platform == "slack_mention":
            signed = self.signer.app_mention(text=text, user_id=SLACK_OPERATOR, channel=SLACK_CHANNEL)
            key = f"slack:{signed.payload['event_id']}"
            return self._keep(self.requests, key, platform, text), signed.body.encode(), signed.headers, "/slack/events"
        update = self.telegram.push_message(TELEGRAM_OPERATOR, TELEGRAM_OPERATOR, text)
        key = f"telegram:{update['update_id']}"
        return self._keep(self.requests, key, platform, text), *self._telegram_copy(update), "/telegram/webhook"

    def deliver(self, delivery: Delivery, body: bytes, headers: dict[str, str], path: str) -> None:
        """Send one copy; its answer goes on the delivery's record."""
        status, text = post(self.web_url + path, body, headers)
        with self._lock:
            delivery.statuses.append(status)
            delivery.bodies.append(text[:300])

    # -- clicks -------------------------------------------------------------------------------------

    def pending_buttons(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(platform, approval id, the message) of every approval copy still showing an Approve button."""
        found = []
        for message in self.slack.messages(SLACK_CHANNEL):
            for block in message.get("blocks") or []:
                for element in block.get("elements") or [] if block.get("type") == "actions" else []:
                    value = str(element.get("value") or "")
                    if value.startswith("approve:"):
                        found.append(("slack", value.removeprefix("approve:"), message))
        for message in self.telegram.sent(TELEGRAM_OPERATOR):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    data = str(button.get("callback_data") or "")
                    if data.startswith("approve:"):
                        found.append(("telegram", data.removeprefix("approve:"), message))
        return found

    def click(self, platform: str, approval_id: str, message: dict[str, Any]) -> tuple[Delivery, bytes,
                                                                                    dict[str, str], str]:
        """The operator presses Approve on `message`: a block_actions payload or a callback_query update."""
        if platform == "slack":
            signed = self.signer.block_actions(action_id="approve", value=f"approve:{approval_id}",
                                               message_ts=message["ts"], channel_id=SLACK_CHANNEL,
                                               blocks=message.get("blocks"), user_id=SLACK_OPERATOR)
            return (self._keep(self.clicks, approval_id, platform, "approve"), signed.body.encode(), signed.headers,
                    "/slack/events")
        update = self.telegram.push_callback(TELEGRAM_OPERATOR, TELEGRAM_OPERATOR, message["message_id"],
                                             f"approve:{approval_id}")
        return (self._keep(self.clicks, approval_id, platform, "approve"), *self._telegram_copy(update),
                "/telegram/webhook")

    def clicked(self, approval_id: str) -> bool:
        """Whether some click on this approval was answered 200 (the operator, seeing that, stops pressing)."""
        with self._lock:
            return any(c.key == approval_id and c.accepted for c in self.clicks)

    def attempts(self, approval_id: str) -> int:
        with self._lock:
            return sum(1 for c in self.clicks if c.key == approval_id)

    # -- shared -------------------------------------------------------------------------------------

    def _keep(self, into: list[Delivery], key: str, platform: str, what: str) -> Delivery:
        delivery = Delivery(key=key, platform=platform, what=what)
        with self._lock:
            into.append(delivery)
        return delivery

    def _telegram_copy(self, update: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        return json.dumps(update).encode(), {"Content-Type": "application/json", SECRET_HEADER: TELEGRAM_SECRET}
