"""Outbox rows to Slack: chat.postMessage and chat.update through the Web API client, rate limits as RetryLater.

A post carries its outbox row in the message's metadata, so a retry after a lost answer finds the message it
posted instead of posting it twice.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.digest_delivery import send_chart_slack
from bot.render.blockkit import BlockKitRenderer, SlackMessage
from orchestrator import CopyGone, Message, OutboxItem, RetryLater, Settings

log = structlog.get_logger(__name__)

# The metadata event type every posted outbox row carries, with its id: how a re-try finds what was posted.
POST_TAG = "opsos_outbox"
# Where the search for an earlier post starts: this long before the first attempt was marked, for the skew between
# our clock and Slack's (its ts are Slack's time). It ends after this many pages of history, newest first: a post
# further back is posted again (at least once, never lost) rather than a retry reading a busy channel for minutes.
HISTORY_MARGIN_SECONDS = 120.0
HISTORY_PAGE = 200
HISTORY_PAGES = 10

renderer = BlockKitRenderer()


def client(settings: Settings) -> AsyncWebClient:
    # No retry handlers: slack_sdk's default one posts again after a connection error, also when the error came
    # after Slack had posted the message (the answer lost on the way back), a duplicate nobody could see coming.
    # A failed post is retried through the outbox instead, which first looks for the message it may have posted.
    return AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, retry_handlers=[])


def _tag(item: OutboxItem) -> dict[str, Any]:
    return {"event_type": POST_TAG, "event_payload": {"outbox_id": item.id}}


class SlackSender:
    """Outbox rows for Slack: chat.postMessage with Block Kit; the ref is where the message now lives.

    Raises RetryLater on HTTP 429, with Slack's Retry-After, so the outbox defers the row.
    """

    # Slack sends Retry-After with every 429; should something in between strip it, wait a minute (Slack
    # counts its limits per minute) rather than ask again at once.
    FALLBACK_RETRY_AFTER = 60.0

    # What chat.update answers when the message can never be edited again: deleted, its channel gone or archived,
    # or no longer the bot's to edit. Anything else (a 500, a timeout) may pass and is retried.
    GONE = frozenset({"message_not_found", "channel_not_found", "cant_update_message", "edit_window_closed",
                      "is_archived"})

    def __init__(self, web_client: AsyncWebClient, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.client = web_client
        # The real time, not the injected one: an attempt's time is compared with Slack's message timestamps.
        self.wall_clock = wall_clock

    async def send(self, *, item: OutboxItem, progress: Callable[[dict[str, Any]], Awaitable[None]]) -> dict[str, Any]:
        """One chat.postMessage however long the message (the renderer keeps it within Slack's 50 blocks),
        tagged with the outbox row in its metadata; the chart upload after it never fails the row (see below).

        An attempt is marked in `progress` before it posts, with the time of the row's first attempt. A row whose
        earlier attempt was marked may have been posted with its answer lost (a connection cut after Slack took it,
        a deliverer killed): the conversation is searched from that time on for the tagged message first, and a
        found one is the delivery, not posted again.
        """
        rendered: SlackMessage = renderer.render(message=item.message)
        marked = item.progress or {}
        if marked.get("attempted"):
            found = await self._posted_earlier(item)
            if found is not None:
                log.info("slack.post_found", item=item.id, ts=found["ts"])
                return found
        # The first attempt's time is kept: any post of this row, by any attempt, is later than it.
        await progress({"attempted": True, "attempted_at": marked.get("attempted_at") or self.wall_clock()})
        try:
            response = await self.client.chat_postMessage(channel=item.conversation, unfurl_links=False,
                                                          unfurl_media=False, metadata=_tag(item),
                                                          **rendered.as_kwargs())
        except SlackApiError as error:
            busy = self._rate_limited(error)
            if busy is None:
                raise
            raise busy from error
        ref: dict[str, Any] = {"channel": response["channel"], "ts": response["ts"]}
        if item.message.attachments:
            # The digest's chart goes up as a file under the message it belongs to. A failed upload is
            # logged, not raised: raising would mark the row failed and post the text a second time. Any
            # failure, not only Slack's answers: a dropped connection or a timeout re-posted the digest too.
            try:
                files = await send_chart_slack(self.client, channel=response["channel"], message=item.message)
                ref["files"] = [f.get("id") for f in files if f]
            except Exception as error:
                log.warning("slack.attachment_failed", item=item.id, error=str(error))
        return ref

    async def _posted_earlier(self, item: OutboxItem) -> dict[str, Any] | None:
        """The message an earlier attempt posted for `item`, by its tag, from the conversation's history since the
        row's first attempt (its queueing, for a row marked before attempts had a time); None when there is none in
        HISTORY_PAGES pages, or when the history cannot be read (then it is posted again: at least once, never
        lost)."""
        since = (item.progress or {}).get("attempted_at") or item.created_at.timestamp()
        try:
            channel = await self._conversation_id(item.conversation)
            cursor: str | None = None
            for _ in range(HISTORY_PAGES):
                history = await self.client.conversations_history(
                    channel=channel, oldest=f"{float(since) - HISTORY_MARGIN_SECONDS:.6f}", limit=HISTORY_PAGE,
                    include_all_metadata=True, cursor=cursor)
                for message in history.get("messages") or []:
                    metadata = message.get("metadata") or {}
                    if (metadata.get("event_type") == POST_TAG
                            and (metadata.get("event_payload") or {}).get("outbox_id") == item.id):
                        return {"channel": channel, "ts": message["ts"], "found": True}
                cursor = (history.get("response_metadata") or {}).get("next_cursor") or None
                if cursor is None:
                    return None
        except Exception as error:  # a missing scope, a closed DM, Slack away: post as before
            log.warning("slack.history_unavailable", item=item.id, error=str(error))
            return None
        log.warning("slack.history_too_long", item=item.id, pages=HISTORY_PAGES)
        return None

    async def _conversation_id(self, conversation: str) -> str:
        """The id whose history holds what was posted to `conversation`: a user id (U…, W…) posts into the bot's
        direct message with that user, which conversations.history knows only by its own id (D…)."""
        if not conversation.startswith(("U", "W")):
            return conversation
        opened = await self.client.conversations_open(users=conversation)
        return str(opened["channel"]["id"])

    async def edit(self, *, item: OutboxItem, target: OutboxItem, message: Message) -> dict[str, Any]:
        """chat.update the copy `target` to read `message`: its content re-rendered as first sent, the buttons of
        decided approvals gone, their outcome under it. Raises CopyGone when Slack says it cannot be edited."""
        ref = target.delivery_ref or {}
        if not ref.get("ts"):
            raise CopyGone(f"outbox row {target.id} has no Slack message to edit")
        try:
            await self.client.chat_update(channel=ref["channel"], ts=ref["ts"],
                                          **renderer.render(message=message).as_kwargs())
        except SlackApiError as error:
            reason = error.response.get("error") if isinstance(error.response.data, dict) else None
            if reason in self.GONE:
                raise CopyGone(f"Slack answered {reason} for {ref['channel']}/{ref['ts']}") from error
            busy = self._rate_limited(error)
            if busy is None:
                raise
            raise busy from error
        return {"channel": ref["channel"], "ts": ref["ts"]}

    @classmethod
    def _rate_limited(cls, error: SlackApiError) -> RetryLater | None:
        """A 429 as RetryLater, with Slack's Retry-After; None for any other failure."""
        if error.response.status_code != 429:
            return None
        # The 429 reaches us because client() sets no retry handlers: slack_sdk's RateLimitErrorRetryHandler
        # would sleep out Retry-After inside this call and stall the whole delivery pass, where a deferred row
        # costs nothing.
        return RetryLater(cls._retry_after(error.response.headers), "Slack answered 429 ratelimited")

    @classmethod
    def _retry_after(cls, headers: Any) -> float:
        """Seconds from a 429's Retry-After; headers are aiohttp's case-insensitive ones or a plain dict."""
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        if isinstance(value, list):  # slack_sdk's retry layer keeps each header as a list
            value = value[0] if value else None
        try:
            return float(value) if value is not None else cls.FALLBACK_RETRY_AFTER
        except ValueError:  # an HTTP-date, which Slack does not send
            return cls.FALLBACK_RETRY_AFTER


__all__ = ["POST_TAG", "SlackSender", "client"]
