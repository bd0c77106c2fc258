"""The digest's chart reaches Slack (files_upload_v2) and Telegram (sendPhoto) as the real clients send it."""
import struct

from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.digest_delivery import send_chart_slack, send_chart_telegram
from orchestrator import Message, MessageKind
from orchestrator.charts import budget_burn_png
from orchestrator.messages import Attachment
from orchestrator.spend import BurnDay
from tests.standins.fixtures import SLACK_BOT_TOKEN


def _digest() -> tuple[Message, bytes]:
    from datetime import date, timedelta

    png = budget_burn_png([BurnDay(day=date(2026, 3, 1) + timedelta(days=i), usd=0.1 * i) for i in range(30)],
                          daily_cap=2.0)
    attachment = Attachment.of(png, filename="budget-burn-2026-03-30.png", title="Model spend per day")
    return Message(kind=MessageKind.REPORT, title="Daily digest", attachments=[attachment]), png


async def test_slack_receives_the_chart_as_a_shared_file(slack_api):
    message, png = _digest()
    client = AsyncWebClient(token=SLACK_BOT_TOKEN, base_url=slack_api.api_url)
    files = await send_chart_slack(client, channel="C0OPS", message=message)
    [shared] = slack_api.files("C0OPS")
    assert shared["data"] == png and shared["filename"] == "budget-burn-2026-03-30.png"
    assert shared["title"] == "Model spend per day" and files[0]["id"] == shared["id"]
    assert struct.unpack(">II", shared["data"][16:24]) == (800, 400)


async def test_telegram_receives_the_chart_as_a_photo(telegram_api):
    message, png = _digest()
    bot = Bot(telegram_api.token, base_url=telegram_api.base_url, request=HTTPXRequest())
    async with bot:
        sent = await send_chart_telegram(bot, chat_id=42, message=message)
    call = telegram_api.last("sendPhoto")
    assert call.files["photo"] == png
    assert call.params["caption"] == "Model spend per day" and str(call.params["chat_id"]) == "42"
    assert len(sent) == 1
