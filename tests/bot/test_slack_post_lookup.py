"""A retried Slack post finds the message an earlier attempt posted (its answer lost) instead of posting it again:
through the outbox's own delivery path, the real slack_sdk client and the Slack stand-in's history."""
from __future__ import annotations

from datetime import timedelta

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_sender import HISTORY_PAGE, POST_TAG, SlackSender, client
from orchestrator import Message, MessageKind, outbox
from tests.bot.chat_helpers import deliver
from tests.standins import SlackStandIn
from tests.standins.fixtures import SLACK_BOT_TOKEN


def _sender(slack_api: SlackStandIn, settings) -> SlackSender:
    return SlackSender(client(settings.model_copy(update={"slack_bot_token": SLACK_BOT_TOKEN,
                                                          "slack_api_url": slack_api.api_url})))


def _queue(db, conversation: str, title: str = "Run #1 succeeded") -> int:
    with db.connection() as conn, conn.transaction():
        return outbox.post(conn, channel="slack", conversation=conversation,
                           message=Message(kind=MessageKind.REPORT, title=title))


def _tagged(slack_api: SlackStandIn, outbox_id: int) -> list[dict]:
    return [m for m in slack_api.messages() if (m.get("metadata") or {}).get("event_type") == POST_TAG
            and m["metadata"]["event_payload"] == {"outbox_id": outbox_id}]


async def test_a_retried_post_beyond_the_first_history_page_is_found_not_posted_again(db, slack_api, settings):
    """The first attempt posted, its answer lost; then a busy channel took more than a page of messages before the
    retry. The lookup read one page (the newest) and, not finding the tag there, posted a second copy. It now
    follows `next_cursor` back to the first attempt's time."""
    sender = _sender(slack_api, settings)
    row = _queue(db, "C0OPS")
    slack_api.drop_next("chat.postMessage")
    assert (await deliver(db, "slack", sender)).failed
    chatter = AsyncWebClient(token=SLACK_BOT_TOKEN, base_url=slack_api.api_url)
    for n in range(HISTORY_PAGE + 30):
        await chatter.chat_postMessage(channel="C0OPS", text=f"chatter {n}")
    outcome = await deliver(db, "slack", sender, later=timedelta(seconds=5))
    assert outcome.delivered == [row]
    [posted] = _tagged(slack_api, row)
    with db.connection() as conn:
        ref = conn.execute("SELECT delivery_ref FROM outbox WHERE id = %s", (row,)).fetchone()["delivery_ref"]
    assert (ref["channel"], ref["ts"]) == ("C0OPS", posted["ts"])
    assert len(slack_api.calls_to("conversations.history")) > 1


async def test_a_retried_dm_addressed_by_user_id_is_found_in_its_dm_channel(db, slack_api, settings):
    """A row addressed to a user id (U…): Slack posts it into the bot's DM (D…), and conversations.history refuses
    a user id, so the lookup failed and the retry posted a second copy. The DM's id now comes from
    conversations.open, and the found message's ref names the DM, where chat.update can edit it."""
    sender = _sender(slack_api, settings)
    row = _queue(db, "U0OPERATOR")
    slack_api.drop_next("chat.postMessage")
    assert (await deliver(db, "slack", sender)).failed
    outcome = await deliver(db, "slack", sender, later=timedelta(seconds=5))
    assert outcome.delivered == [row]
    [posted] = _tagged(slack_api, row)
    dm = slack_api.last("conversations.open").response["channel"]["id"]
    assert dm.startswith("D") and posted["channel"] == dm
    with db.connection() as conn:
        ref = conn.execute("SELECT delivery_ref FROM outbox WHERE id = %s", (row,)).fetchone()["delivery_ref"]
    assert (ref["channel"], ref["ts"]) == (dm, posted["ts"])


async def test_the_first_attempts_time_is_kept_through_later_attempts(db, slack_api, settings):
    """Each attempt marks the row before it posts; the mark keeps the first attempt's time, since an earlier
    attempt's post is what a later retry looks for."""
    times = iter([1000.0, 2000.0])
    sender = SlackSender(_sender(slack_api, settings).client, wall_clock=lambda: next(times))
    row = _queue(db, "C0OPS")
    slack_api.fail_next("chat.postMessage", times=2)
    await deliver(db, "slack", sender)
    await deliver(db, "slack", sender, later=timedelta(seconds=5))
    with db.connection() as conn:
        progress = conn.execute("SELECT progress FROM outbox WHERE id = %s", (row,)).fetchone()["progress"]
    assert progress == {"attempted": True, "attempted_at": 1000.0}
