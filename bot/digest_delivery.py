"""Sending a message's image attachments (the digest's budget chart): Slack file upload, Telegram photo."""
from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot

from orchestrator import Message

# Telegram refuses photo captions over 1024 characters.
MAX_CAPTION = 1024


async def send_chart_slack(client: AsyncWebClient, *, channel: str, message: Message,
                           thread_ts: str | None = None) -> list[dict[str, Any]]:
    """Upload each attachment to `channel` with files_upload_v2; returns Slack's file records (id, title…)."""
    shared = []
    for attachment in message.attachments:
        response = await client.files_upload_v2(
            channel=channel, content=attachment.data, filename=attachment.filename,
            title=attachment.title or attachment.filename, thread_ts=thread_ts,
        )
        shared += response.get("files") or [response.get("file")]
    return shared


async def send_chart_telegram(bot: Bot, *, chat_id: int | str, message: Message,
                              reply_to: int | None = None) -> list[int]:
    """Send each image attachment as a photo (caption: its title); returns the Telegram message ids."""
    sent = []
    for attachment in message.attachments:
        if not attachment.mime.startswith("image/"):
            continue
        photo = await bot.send_photo(chat_id=chat_id, photo=attachment.data, filename=attachment.filename,
                                     caption=(attachment.title or message.title)[:MAX_CAPTION],
                                     reply_to_message_id=reply_to)
        sent.append(photo.message_id)
    return sent
