"""The stand-ins speak each service's wire format well enough for the real client libraries."""

from __future__ import annotations

import asyncio
import json
import smtplib
import subprocess
import sys
import textwrap
from email.message import EmailMessage
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, RetryAfter
from telegram.ext import Application, CommandHandler, ContextTypes

from tests.standins import OpenAIStandIn, SlackSigner, SlackStandIn, SmtpStandIn, TelegramStandIn
from tests.standins.fixtures import SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET

# -- Slack ------------------------------------------------------------------------------------------


def test_slack_post_then_update_is_recorded_and_visible(slack_api: SlackStandIn) -> None:
    client = WebClient(token=SLACK_BOT_TOKEN, base_url=slack_api.api_url)
    first = client.chat_postMessage(channel="C0OPS", text="Approve?", blocks=[{"type": "divider"}])
    second = client.chat_postMessage(channel="C0OPS", text="next")
    client.chat_update(channel="C0OPS", ts=first["ts"], text="Approved")

    assert float(second["ts"]) > float(first["ts"])
    assert slack_api.last("chat.postMessage").params["text"] == "next"
    assert slack_api.last("chat.postMessage").headers["authorization"] == f"Bearer {SLACK_BOT_TOKEN}"
    assert [m["text"] for m in slack_api.messages("C0OPS")] == ["Approved", "next"]
    assert slack_api.messages()[0]["blocks"] == [{"type": "divider"}]


def test_slack_files_upload_v2_delivers_the_bytes(slack_api: SlackStandIn) -> None:
    client = WebClient(token=SLACK_BOT_TOKEN, base_url=slack_api.api_url)
    response = client.files_upload_v2(
        channel="C0OPS", content=b"a,b\n1,2\n", filename="report.csv", title="Report", initial_comment="here"
    )

    assert response["file"]["name"] == "report.csv"
    [shared] = slack_api.files("C0OPS")
    assert shared["data"] == b"a,b\n1,2\n"
    assert shared["initial_comment"] == "here"


def test_slack_refuses_a_call_without_a_token(slack_api: SlackStandIn) -> None:
    client = WebClient(base_url=slack_api.api_url)
    with pytest.raises(SlackApiError) as error:
        client.chat_postMessage(channel="C0OPS", text="hi")
    assert error.value.response["error"] == "not_authed"


def test_slack_rate_limit_is_retried_by_the_client_retry_handler(slack_api: SlackStandIn) -> None:
    slack_api.fail_next("chat.postMessage", kind="ratelimited", retry_after=0)
    client = WebClient(
        token=SLACK_BOT_TOKEN,
        base_url=slack_api.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    client.chat_postMessage(channel="C0OPS", text="eventually")

    assert [c.status for c in slack_api.calls_to("chat.postMessage")] == [429, 200]
    assert len(slack_api.messages()) == 1


def test_slack_dropped_post_is_posted_but_never_answered(slack_api: SlackStandIn) -> None:
    """A drop is the ambiguous failure: the message is in the channel, the client only sees the connection go."""
    slack_api.drop_next("chat.postMessage")
    client = WebClient(token=SLACK_BOT_TOKEN, base_url=slack_api.api_url, retry_handlers=[])
    with pytest.raises(Exception) as error:
        client.chat_postMessage(channel="C0OPS", text="did it land?")
    assert not isinstance(error.value, SlackApiError)
    assert [m["text"] for m in slack_api.messages("C0OPS")] == ["did it land?"]
    assert [c.status for c in slack_api.calls_to("chat.postMessage")] == [0]


async def test_slack_slow_answer_arrives_late_but_whole(slack_api: SlackStandIn) -> None:
    slack_api.slow_next("chat.postMessage", seconds=0.3)
    client = AsyncWebClient(token=SLACK_BOT_TOKEN, base_url=slack_api.api_url)
    started = asyncio.get_running_loop().time()
    response = await client.chat_postMessage(channel="C0OPS", text="late")
    assert asyncio.get_running_loop().time() - started >= 0.3
    assert response["ok"] and len(slack_api.messages()) == 1


async def test_slack_async_client_posts_ephemeral_and_opens_dm(slack_api: SlackStandIn) -> None:
    slack_api.add_user("U0OPERATOR", name="operator", tz="Europe/Berlin")
    client = AsyncWebClient(token=SLACK_BOT_TOKEN, base_url=slack_api.api_url)
    dm = await client.conversations_open(users="U0OPERATOR")
    await client.chat_postEphemeral(channel="C0OPS", user="U0OPERATOR", text="only you")
    user = await client.users_info(user="U0OPERATOR")

    assert dm["channel"]["id"].startswith("D")
    assert slack_api.ephemeral("C0OPS")[0]["text"] == "only you"
    assert user["user"]["tz"] == "Europe/Berlin"
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="", text="x")


def test_slack_signed_requests_verify_and_response_url_records(
    slack_signer: SlackSigner, slack_api: SlackStandIn
) -> None:
    verifier = SignatureVerifier(SLACK_SIGNING_SECRET)
    command = slack_signer.slash_command(text="status")
    click = slack_signer.block_actions(action_id="approve", value="run-1", message_ts="1700000000.000100")
    event = slack_signer.app_mention(text="hello")

    for request in (command, click, event):
        assert verifier.is_valid_request(request.body, request.headers)
    assert click.payload["actions"][0]["action_id"] == "approve"
    assert event.payload["event"]["text"] == "<@U0OPSBOT> hello"

    status, _ = command.model_copy(
        update={"body": json.dumps({"text": "done"}), "headers": {"Content-Type": "application/json"}}
    ).post(command.payload["response_url"])
    assert status == 200
    assert slack_api.responses(command.response_id) == [{"text": "done"}]


async def test_slack_bolt_app_handles_a_signed_click_and_updates_the_message(
    slack_api: SlackStandIn, slack_signer: SlackSigner
) -> None:
    app = AsyncApp(
        signing_secret=SLACK_SIGNING_SECRET,
        client=AsyncWebClient(token=SLACK_BOT_TOKEN, base_url=slack_api.api_url),
    )

    @app.action("approve")
    async def approve(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.chat_update(channel=body["channel"]["id"], ts=body["message"]["ts"], text="Approved")

    posted = await app.client.chat_postMessage(channel="C0OPS", text="Approve?")
    click = slack_signer.block_actions(action_id="approve", value="run-1", message_ts=posted["ts"])
    response = await app.async_dispatch(AsyncBoltRequest(body=click.body, headers=click.headers))

    assert response.status == 200
    assert [m["text"] for m in slack_api.messages("C0OPS")] == ["Approved"]


# -- Telegram ---------------------------------------------------------------------------------------


async def test_telegram_send_edit_answer_round_trip(telegram_api: TelegramStandIn) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Approve", callback_data="approve:1")]])
    async with Bot(telegram_api.token, base_url=telegram_api.base_url) as bot:
        sent = await bot.send_message(chat_id=42, text="<b>Approve?</b>", parse_mode="HTML", reply_markup=keyboard)
        click = telegram_api.push_callback(user_id=42, chat_id=42, message_id=sent.message_id, data="approve:1")
        updates = await bot.get_updates(timeout=1)
        await bot.answer_callback_query(updates[0].callback_query.id, text="ok")
        edited = await bot.edit_message_text(chat_id=42, message_id=sent.message_id, text="Approved")

    assert updates[0].callback_query.data == "approve:1"
    assert updates[0].update_id == click["update_id"]
    sent_call = telegram_api.last("sendMessage").params
    assert (sent_call["parse_mode"], sent_call["reply_markup"]["inline_keyboard"][0][0]["callback_data"]) == (
        "HTML",
        "approve:1",
    )
    assert edited.text == "Approved" and edited.reply_markup is None
    assert telegram_api.sent(42)[0]["text"] == "Approved"


async def test_telegram_dropped_send_is_sent_but_never_answered(telegram_api: TelegramStandIn) -> None:
    telegram_api.drop_next("sendMessage")
    telegram_api.fail_next("sendMessage")
    async with Bot(telegram_api.token, base_url=telegram_api.base_url) as bot:
        with pytest.raises(Exception) as dropped:
            await bot.send_message(chat_id=42, text="did it land?")
        with pytest.raises(Exception) as failed:
            await bot.send_message(chat_id=42, text="refused")
    assert "Internal Server Error" not in str(dropped.value)
    assert "Internal Server Error" in str(failed.value)
    assert [m["text"] for m in telegram_api.sent(42)] == ["did it land?"]


async def test_telegram_get_updates_honours_offset(telegram_api: TelegramStandIn) -> None:
    telegram_api.push_message(user_id=7, chat_id=7, text="/status now")
    async with Bot(telegram_api.token, base_url=telegram_api.base_url) as bot:
        [update] = await bot.get_updates(timeout=1)
        again = await bot.get_updates(offset=update.update_id + 1, timeout=0)

    assert update.message.text == "/status now" and update.message.entities[0].type == "bot_command"
    assert again == ()


# PTB itself warns when it builds RetryAfter from Telegram's integer retry_after.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_telegram_enforces_length_and_button_data_limits(telegram_api: TelegramStandIn) -> None:
    too_much = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
    async with Bot(telegram_api.token, base_url=telegram_api.base_url) as bot:
        with pytest.raises(BadRequest, match="too long"):
            await bot.send_message(chat_id=1, text="a" * 4097)
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(chat_id=1, text="hi", reply_markup=too_much)
        assert telegram_api.last("sendMessage").response["description"] == "Bad Request: BUTTON_DATA_INVALID"
        telegram_api.fail_next("sendMessage", kind="ratelimited", retry_after=3)
        with pytest.raises(RetryAfter):
            await bot.send_message(chat_id=1, text="hi")

    assert telegram_api.last("sendMessage").response["parameters"] == {"retry_after": 3}
    assert telegram_api.sent() == []


async def test_telegram_send_photo_records_the_uploaded_bytes(telegram_api: TelegramStandIn) -> None:
    async with Bot(telegram_api.token, base_url=telegram_api.base_url) as bot:
        message = await bot.send_photo(chat_id=5, photo=b"\x89PNG fake", caption="chart")

    assert message.caption == "chart" and message.photo
    assert telegram_api.last("sendPhoto").files["photo"] == b"\x89PNG fake"


async def test_telegram_application_polls_and_replies_to_a_command(telegram_api: TelegramStandIn) -> None:
    replied = asyncio.Event()

    async def status(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text("all good")
        replied.set()

    app = Application.builder().token(telegram_api.token).base_url(telegram_api.base_url).build()
    app.add_handler(CommandHandler("status", status))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        telegram_api.push_message(user_id=9, chat_id=9, text="/status")
        await asyncio.wait_for(replied.wait(), 5)
        await app.updater.stop()
        await app.stop()

    assert [m["text"] for m in telegram_api.sent(9)] == ["all good"]


# -- OpenAI -----------------------------------------------------------------------------------------


class Proposal(BaseModel):
    action: str
    amount: int


def test_openai_text_reply_carries_the_scripted_usage(openai_api: OpenAIStandIn) -> None:
    openai_api.script_text("Hello operator", usage={"prompt_tokens": 12, "completion_tokens": 3})
    model = ChatOpenAI(model="gpt-4o-mini", base_url=openai_api.base_url, api_key="test-key")
    reply = model.invoke("hi")

    assert reply.content == "Hello operator"
    assert reply.usage_metadata is not None
    assert (
        reply.usage_metadata["input_tokens"],
        reply.usage_metadata["output_tokens"],
        reply.usage_metadata["total_tokens"],
    ) == (12, 3, 15)
    assert openai_api.requests[0]["messages"] == [{"role": "user", "content": "hi"}]
    assert openai_api.requests[0]["model"] == "gpt-4o-mini"


def test_openai_structured_output_comes_from_the_scripted_tool_call(openai_api: OpenAIStandIn) -> None:
    openai_api.script_tool_call("Proposal", {"action": "refund", "amount": 40})
    model = ChatOpenAI(model="gpt-4o-mini", base_url=openai_api.base_url, api_key="test-key")
    proposal = model.with_structured_output(Proposal, method="function_calling").invoke("refund order 7?")

    assert proposal == Proposal(action="refund", amount=40)
    assert openai_api.requests[0]["tools"][0]["function"]["name"] == "Proposal"


def test_openai_streaming_reports_usage_in_the_last_chunk(openai_api: OpenAIStandIn) -> None:
    openai_api.script_text("one two three", usage={"prompt_tokens": 4, "completion_tokens": 3})
    model = ChatOpenAI(model="gpt-4o-mini", base_url=openai_api.base_url, api_key="test-key", stream_usage=True)
    chunks = list(model.stream("count"))
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk

    assert total.content == "one two three"
    assert total.usage_metadata is not None and total.usage_metadata["total_tokens"] == 7


def test_openai_server_error_is_retried_by_the_client(openai_api: OpenAIStandIn) -> None:
    openai_api.fail_next_requests(1)
    openai_api.script_text("after retry")
    model = ChatOpenAI(model="gpt-4o-mini", base_url=openai_api.base_url, api_key="test-key", max_retries=1)

    assert model.invoke("hi").content == "after retry"
    assert [c.status for c in openai_api.calls] == [500, 200]


# -- SMTP -------------------------------------------------------------------------------------------


def _email(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "ops@opsos.test", to, "Invoice"
    message["Message-ID"] = "<k1@opsos>"
    message.set_content("Your invoice.")
    return message


def test_smtp_records_envelope_and_message(smtp_server: SmtpStandIn) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.send_message(_email("client@example.com"))

    [received] = smtp_server.to("client@example.com")
    assert received.mail_from == "ops@opsos.test"
    assert received.message_id == "<k1@opsos>"
    assert received.message["Subject"] == "Invoice"


def test_smtp_transient_failure_is_a_421(smtp_server: SmtpStandIn) -> None:
    smtp_server.fail_next()
    with (
        pytest.raises(smtplib.SMTPDataError) as error,
        smtplib.SMTP(smtp_server.host, smtp_server.port) as client,
    ):
        client.send_message(_email("client@example.com"))
    assert error.value.smtp_code == 421
    assert smtp_server.messages == []


def test_smtp_dropped_message_is_delivered_though_the_client_hears_no_250(smtp_server: SmtpStandIn) -> None:
    smtp_server.drop_next()
    with pytest.raises(smtplib.SMTPServerDisconnected), smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        client.send_message(_email("client@example.com"))
    assert [(m.message_id, m.answered) for m in smtp_server.to("client@example.com")] == [("<k1@opsos>", False)]


def test_smtp_slow_message_is_accepted_late(smtp_server: SmtpStandIn) -> None:
    smtp_server.slow_next(seconds=0.3)
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.send_message(_email("client@example.com"))
    assert len(smtp_server.messages) == 1


def test_smtp_held_message_is_accepted_after_release(smtp_server: SmtpStandIn) -> None:
    smtp_server.hold_for("client@example.com")
    client = _sender_process(smtp_server)
    assert smtp_server.held.wait(5)
    assert smtp_server.messages == []

    smtp_server.release()
    assert client.wait(5) == 0
    assert len(smtp_server.messages) == 1


def test_smtp_message_held_when_its_sender_is_killed_is_not_received(smtp_server: SmtpStandIn) -> None:
    smtp_server.hold_for("client@example.com")
    client = _sender_process(smtp_server)
    assert smtp_server.held.wait(5)

    client.kill()
    client.wait(5)
    assert smtp_server.dropped_event.wait(5)
    assert smtp_server.messages == []
    assert smtp_server.dropped[0].message_id == "<k1@opsos>"

    # The hold was for one message: a retry by the next worker goes through.
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as retry:
        retry.send_message(_email("client@example.com"))
    assert len(smtp_server.messages) == 1


def _sender_process(smtp_server: SmtpStandIn) -> subprocess.Popen[bytes]:
    # A separate process, so "killed mid-step" is a real SIGKILL closing a real socket.
    script = textwrap.dedent(f"""
        import smtplib
        from email.message import EmailMessage
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "ops@opsos.test", "client@example.com", "Invoice"
        m["Message-ID"] = "<k1@opsos>"
        m.set_content("held")
        with smtplib.SMTP("127.0.0.1", {smtp_server.port}, timeout=10) as s:
            s.send_message(m)
    """)
    return subprocess.Popen([sys.executable, "-c", script])
