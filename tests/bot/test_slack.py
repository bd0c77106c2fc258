"""Slack through the real slack-bolt and slack_sdk: signed requests into our aiohttp app, the Web API stand-in out."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.server import FrontEnds, build_web_app
from bot.slack import SlackSender, build_app
from orchestrator import Operations
from tests.bot.chat_helpers import OPERATORS, deliver, eventually, queued_jobs, slack_approval, slack_copy_decided
from tests.orchestrator.helpers import WINBACK, count, operations, pending_approval, run_state, seed
from tests.standins import SignedRequest, SlackSigner, SlackStandIn
from tests.standins.fixtures import SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET


@pytest.fixture
def settings(settings, slack_api: SlackStandIn):
    return settings.model_copy(update={
        "operators": OPERATORS, "slack_bot_token": SLACK_BOT_TOKEN, "slack_signing_secret": SLACK_SIGNING_SECRET,
        "slack_api_url": slack_api.api_url,
    })


@dataclass
class SlackWorld:
    ops: Operations
    http: TestClient
    sender: SlackSender
    api: SlackStandIn

    async def post(self, request: SignedRequest, **headers: str) -> tuple[int, Any]:
        response = await self.http.post("/slack/events", data=request.body.encode(),
                                        headers={**request.headers, **headers})
        text = await response.text()
        try:
            return response.status, json.loads(text) if text else None
        except ValueError:
            return response.status, text

    async def deliver(self, later: timedelta = timedelta(0)):
        return await deliver(self.ops.pool, "slack", self.sender, later=later)

    async def ask_for_approval(self, signer: SlackSigner, services, work) -> tuple[str, dict[str, Any]]:
        """The win-back request as /ops, run to its approval and delivered: the approval and its message."""
        seed(services)
        await self.post(signer.slash_command(text=WINBACK))
        work()
        await self.deliver()
        return pending_approval(self.ops.pool, 1), slack_approval(self.api)


@pytest.fixture
async def slack(services, settings, slack_api: SlackStandIn) -> AsyncIterator[SlackWorld]:
    ops = operations(services)
    bolt = build_app(ops, settings)
    app = build_web_app(ops, settings, FrontEnds(slack=bolt), deliver=False)
    async with TestClient(TestServer(app)) as http:
        yield SlackWorld(ops=ops, http=http, sender=SlackSender(bolt.client), api=slack_api)


async def test_slash_command_to_approval_click_to_report_end_to_end(slack, slack_signer: SlackSigner, services, db,
                                                                     work) -> None:
    seed(services)
    status, ack = await slack.post(slack_signer.slash_command(text=WINBACK))
    assert status == 200
    assert ack["text"].startswith("On it: intent #1 → run #1")
    assert count(db, "intents", "requested_by = 'slack:U0OPERATOR' AND channel = 'slack'") == 1

    work()
    assert (await slack.deliver()).delivered
    approval = slack_approval(slack.api)
    [actions] = [b for b in approval["blocks"] if b["type"] == "actions"]
    approval_id = pending_approval(db, 1)
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        ("approve", f"approve:{approval_id}"), ("reject", f"reject:{approval_id}"), ("why", f"why:{approval_id}")]
    assert approval["blocks"][0]["type"] == "header" and "Approval needed for run #1" in approval["text"]

    click = slack_signer.block_actions(action_id="approve", value=f"approve:{approval_id}",
                                       message_ts=approval["ts"], blocks=approval["blocks"])
    assert (await slack.post(click))[0] == 200
    await slack_copy_decided(slack.api, approval["ts"], "Approved by slack:U0OPERATOR via slack at")
    assert run_state(db, 1) == "running"

    work()
    await slack.deliver()
    assert run_state(db, 1) == "succeeded"
    assert slack.api.messages("C0OPS")[-1]["text"].startswith("Run #1 succeeded")


async def test_second_click_gets_an_ephemeral_already_decided_and_changes_nothing(slack, slack_signer, services, db,
                                                                                 work) -> None:
    approval_id, approval = await slack.ask_for_approval(slack_signer, services, work)
    for verb in ("approve", "reject"):
        click = slack_signer.block_actions(action_id=verb, value=f"{verb}:{approval_id}", message_ts=approval["ts"])
        await slack.post(click)
        await eventually(lambda: slack.api.calls_to("chat.update"))
    [notice] = await eventually(lambda: slack.api.ephemeral("C0OPS"))
    assert notice["user"] == "U0OPERATOR"
    assert notice["text"].startswith("Nothing changed: this approval was already approved by slack:U0OPERATOR at")
    assert count(db, "audit_events", "kind = 'approval.approved'") == 1


async def test_why_button_answers_with_an_ephemeral_explanation(slack, slack_signer, services, db, work) -> None:
    approval_id, approval = await slack.ask_for_approval(slack_signer, services, work)
    await slack.post(slack_signer.block_actions(action_id="why", value=f"why:{approval_id}",
                                                message_ts=approval["ts"]))
    [why] = await eventually(lambda: slack.api.ephemeral("C0OPS"))
    assert why["text"].startswith("Why I ask:")
    assert run_state(db, 1) == "awaiting_approval"


async def test_forged_signature_is_refused_401_and_nothing_enqueued(slack, slack_signer, db, redis) -> None:
    request = slack_signer.slash_command(text=WINBACK)
    forged = request.model_copy(update={"headers": {**request.headers, "X-Slack-Signature": "v0=" + "0" * 64}})
    assert (await slack.post(forged))[0] == 401
    assert count(db, "intents") == 0 and queued_jobs(redis) == 0


async def test_stale_timestamp_is_refused_401_and_nothing_enqueued(slack, slack_signer, db, redis) -> None:
    import time

    stale = slack_signer.slash_command(text=WINBACK, timestamp=int(time.time()) - 10 * 60)
    assert (await slack.post(stale))[0] == 401
    assert count(db, "intents") == 0 and queued_jobs(redis) == 0


async def test_malformed_json_event_body_is_400(slack, slack_signer, db) -> None:
    broken = slack_signer.sign('{"type": "event_callback", ', content_type="application/json", payload={})
    assert (await slack.post(broken))[0] == 400
    assert count(db, "intents") == 0


async def test_malformed_form_payload_is_400(slack, slack_signer) -> None:
    broken = slack_signer.sign("payload=%7Bnot-json", content_type="application/x-www-form-urlencoded", payload={})
    assert (await slack.post(broken))[0] == 400
    empty = slack_signer.sign("&&&", content_type="application/x-www-form-urlencoded", payload={})
    assert (await slack.post(empty))[0] == 400


async def test_slack_retry_delivery_makes_exactly_one_intent(slack, slack_signer, db, redis) -> None:
    first = slack_signer.message_event(text=WINBACK, channel="D0OPS", channel_type="im", event_id="Ev0RETRY")
    assert (await slack.post(first))[0] == 200
    await eventually(lambda: slack.api.messages("D0OPS"))
    retry = slack_signer.message_event(text=WINBACK, channel="D0OPS", channel_type="im", event_id="Ev0RETRY")
    assert (await slack.post(retry, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}))[0] == 200
    again = slack_signer.message_event(text=WINBACK, channel="D0OPS", channel_type="im", event_id="Ev0RETRY")
    await slack.post(again)
    await eventually(lambda: count(db, "audit_events", "kind = 'intent.created'") >= 1)
    assert count(db, "intents") == 1 and queued_jobs(redis) == 1
    assert [m["text"].split(" → ")[0] for m in slack.api.messages("D0OPS")] == ["On it: intent #1"]


async def test_app_mention_in_a_channel_is_a_request(slack, slack_signer, db) -> None:
    assert (await slack.post(slack_signer.app_mention(text=WINBACK)))[0] == 200
    [reply] = await eventually(lambda: slack.api.messages("C0OPS"))
    assert reply["text"].startswith("On it: intent #1")
    with db.connection() as conn:
        row = conn.execute("SELECT request, conversation FROM intents").fetchone()
    assert (row["request"], row["conversation"]) == (WINBACK, "C0OPS")


async def test_a_mention_acked_while_the_database_restarts_is_still_made_an_intent(slack, slack_signer, db,
                                                                                  monkeypatch) -> None:
    """Bolt acks an event before its listener runs, so Slack never sends it again: the fault suite's lost request.
    A store error under the listener is waited out and the call made again, so the mention still becomes one
    intent and one reply."""
    import psycopg

    real = slack.ops.handle_text
    calls = []

    def down_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise psycopg.OperationalError("the database system is shutting down")
        return real(*args, **kwargs)

    monkeypatch.setattr(slack.ops, "handle_text", down_once)
    assert (await slack.post(slack_signer.app_mention(text=WINBACK)))[0] == 200
    [reply] = await eventually(lambda: slack.api.messages("C0OPS"))
    assert reply["text"].startswith("On it: intent #1")
    assert count(db, "intents") == 1 and len(calls) == 2


async def test_a_click_whose_decision_committed_before_a_store_error_is_answered_as_done(
    slack, slack_signer, services, db, work, monkeypatch
) -> None:
    """The click's decision committed, then the database connection failed before its answer came back (the commit
    acknowledged, the connection lost). The retry used to be told "Nothing changed: this approval was already
    approved by" the operator themself, who then believed the click had not counted. The same operator's same
    decision is now answered as done: no "already decided" notice, the copy shows the decision, one audit event."""
    import psycopg

    approval_id, approval = await slack.ask_for_approval(slack_signer, services, work)
    real = slack.ops.decide
    calls = []

    def lost_after_commit(*args, **kwargs):
        decided = real(*args, **kwargs)
        calls.append(decided)
        if len(calls) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return decided

    monkeypatch.setattr(slack.ops, "decide", lost_after_commit)
    click = slack_signer.block_actions(action_id="approve", value=f"approve:{approval_id}",
                                       message_ts=approval["ts"], blocks=approval["blocks"])
    assert (await slack.post(click))[0] == 200
    await slack_copy_decided(slack.api, approval["ts"], "Approved by slack:U0OPERATOR via slack at")
    await eventually(lambda: len(calls) == 2)
    # What the listener answers from: the retry's outcome is the click's success, so no notice is sent.
    assert calls[1].changed and calls[1].reply.text.startswith("Approved by slack:U0OPERATOR")
    assert slack.api.ephemeral("C0OPS") == []
    assert count(db, "audit_events", "kind = 'approval.approved'") == 1
    assert run_state(db, 1) == "running"


async def test_a_dm_command_without_a_dedupe_key_is_not_redone_after_a_store_error_past_its_commit(
    slack, slack_signer, db, monkeypatch
) -> None:
    """`forget 7` makes an intent without the event's dedupe key. Its work committed, then the database failed before
    the answer: the listener used to wait and call it again, so two forget intents were made. It is no longer tried
    again; the operator is told it may have been done and to check before sending it again."""
    import psycopg

    real = slack.ops.handle_text
    calls = []

    def lost_after_commit(*args, **kwargs):
        calls.append(args)
        reply = real(*args, **kwargs)
        if len(calls) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return reply

    monkeypatch.setattr(slack.ops, "handle_text", lost_after_commit)
    event = slack_signer.message_event(text="forget 7", channel="D0OPS", channel_type="im", event_id="Ev0FORGET")
    assert (await slack.post(event))[0] == 200
    [reply] = await eventually(lambda: slack.api.messages("D0OPS"))
    assert reply["text"].startswith("My database stopped answering while I handled that")
    assert count(db, "intents", "kind = 'forget_memory'") == 1 and len(calls) == 1


async def test_channel_chatter_without_a_mention_is_ignored(slack, slack_signer, db) -> None:
    await slack.post(slack_signer.message_event(text=WINBACK, channel="C0OPS", channel_type="channel"))
    await slack.post(slack_signer.app_mention(text="status"))
    await eventually(lambda: slack.api.messages("C0OPS"))
    assert count(db, "intents") == 0


async def test_ops_status_help_and_pause_answer_in_the_ack(slack, slack_signer, services, db, work) -> None:
    seed(services)
    await slack.post(slack_signer.slash_command(text=WINBACK))
    status, ack = await slack.post(slack_signer.slash_command(text="help"))
    assert status == 200 and ack["text"].startswith("Here is what I can do")
    _, ack = await slack.post(slack_signer.slash_command(text="pause 1"))
    assert ack["text"].startswith("Run #1 paused by slack:U0OPERATOR")
    _, ack = await slack.post(slack_signer.slash_command(text="status"))
    assert ack["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "Status", "emoji": True}}
    _, ack = await slack.post(slack_signer.slash_command(text="resume 1"))
    assert "resumed" in ack["text"]
    _, ack = await slack.post(slack_signer.slash_command(text="cancel 1"))
    assert run_state(db, 1) == "cancelled" and "cancelled" in ack["text"]


async def test_slash_command_text_saying_payload_is_still_read(slack, slack_signer, db) -> None:
    """bolt reads any form body containing "payload" as an interaction; the request must not vanish."""
    status, ack = await slack.post(slack_signer.slash_command(text="what is a payload"))
    assert status == 200 and "“what is a payload” matched none of my workflows" in ack["text"]
    status, _ = await slack.post(slack_signer.slash_command(text=f"{WINBACK} and note the payload"))
    assert status == 200 and count(db, "intents") == 1


async def test_unauthorised_user_pressing_approve_is_refused_and_audited(slack, slack_signer, services, db,
                                                                         work) -> None:
    approval_id, approval = await slack.ask_for_approval(slack_signer, services, work)
    click = slack_signer.block_actions(action_id="approve", value=f"approve:{approval_id}", user_id="U0STRANGER",
                                       message_ts=approval["ts"])
    await slack.post(click)
    [refusal] = await eventually(lambda: slack.api.ephemeral("C0OPS"))
    assert refusal["user"] == "U0STRANGER" and refusal["text"].startswith("Sorry, only this workspace's operator")
    assert count(db, "audit_events", "kind = 'access.refused' AND actor = 'slack:U0STRANGER'") == 1
    assert run_state(db, 1) == "awaiting_approval" and not slack.api.calls_to("chat.update")


async def test_unauthorised_slash_command_is_refused_and_nothing_enqueued(slack, slack_signer, db, redis) -> None:
    _, ack = await slack.post(slack_signer.slash_command(text=WINBACK, user_id="U0STRANGER"))
    assert ack["text"].startswith("Sorry, only this workspace's operator")
    assert count(db, "intents") == 0 and queued_jobs(redis) == 0


async def test_button_value_naming_no_approval_is_answered(slack, slack_signer) -> None:
    await slack.post(slack_signer.block_actions(action_id="approve", value="approve:a0000000000",
                                                message_ts="1700000000.000100"))
    await slack.post(slack_signer.block_actions(action_id="reject", value="garbage", message_ts="1700000000.000100"))
    notices = await eventually(lambda: len(slack.api.ephemeral("C0OPS")) == 2 and slack.api.ephemeral("C0OPS"))
    # Each click is answered on its own task, so the two notices may arrive in either order.
    texts = sorted(notice["text"] for notice in notices)
    assert texts[0].startswith("I can't take that request: that approval does not exist")
    assert texts[1].startswith("That button no longer means anything to me")


async def test_failed_delivery_is_retried_with_backoff_and_delivered_later(slack, slack_signer, services, db,
                                                                          work) -> None:
    seed(services)
    await slack.post(slack_signer.slash_command(text=WINBACK))
    work()
    slack.api.fail_next("chat.postMessage")
    outcome = await slack.deliver()
    assert outcome.failed and not outcome.delivered
    assert slack.api.messages() == []
    with db.connection() as conn:
        row = conn.execute("SELECT state, attempts, last_error, next_attempt_at - now() AS wait FROM outbox").fetchone()
    assert (row["state"], row["attempts"]) == ("pending", 1) and "internal_error" in row["last_error"]
    assert row["wait"] > timedelta(seconds=1)
    assert not (await slack.deliver()).delivered  # not yet due
    assert (await slack.deliver(later=timedelta(seconds=5))).delivered
    assert slack_approval(slack.api)
    assert count(db, "outbox", "state = 'delivered' AND delivery_ref ? 'ts'") == 1


async def test_a_post_whose_answer_was_lost_is_found_in_the_conversation_not_posted_again(
    slack, slack_signer, services, db, work
) -> None:
    """The fault suite's re-posted approval: Slack posted the message, then the connection dropped before its
    answer. slack_sdk's retry handler posted it again at once; the outbox would have too. Now the retry looks for
    the message tagged with its outbox row and settles the row with it: one post, and its ts kept for the edits."""
    seed(services)
    await slack.post(slack_signer.slash_command(text=WINBACK))
    work()
    slack.api.drop_next("chat.postMessage")
    outcome = await slack.deliver()
    assert outcome.failed and len(slack.api.messages()) == 1
    assert (await slack.deliver(later=timedelta(seconds=5))).delivered
    [posted] = slack.api.messages()
    assert posted["metadata"]["event_type"] == "opsos_outbox"
    with db.connection() as conn:
        row = conn.execute("SELECT id, state, delivery_ref FROM outbox").fetchone()
    assert row["state"] == "delivered" and row["delivery_ref"]["ts"] == posted["ts"]
    assert posted["metadata"]["event_payload"] == {"outbox_id": row["id"]}


async def test_healthz_reports_the_stores(slack) -> None:
    response = await slack.http.get("/healthz")
    assert response.status == 200 and (await response.json()) == {"ok": True}


async def test_healthz_names_the_failing_store_but_never_its_error_text(slack, monkeypatch) -> None:
    """/healthz answers anyone: it used to return the exception's text (socket paths, hosts, users)."""
    from redis import Redis

    dead = Redis.from_url("unix:///nonexistent/opsos-test.sock", socket_connect_timeout=0.2, retry_on_timeout=False)
    monkeypatch.setattr(slack.ops.services.stores, "redis", dead)
    response = await slack.http.get("/healthz")
    body = await response.json()
    assert response.status == 503 and body == {"ok": False, "failing": "redis"}
    assert "nonexistent" not in await response.text()
