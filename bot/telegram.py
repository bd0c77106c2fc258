"""The Telegram front end: python-telegram-bot updates in, orchestrator calls out; outbox rows sent as HTML.

Handlers run on PTB's event loop; orchestrator calls are blocking database work, so they run in a
thread (asyncio.to_thread). Webhook mode shares the aiohttp server; polling mode needs no public URL.
"""
from __future__ import annotations

import asyncio
import hmac
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web
from telegram import Bot, CallbackQuery, Update
from telegram import Message as TelegramChatMessage
from telegram.constants import ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from bot.digest_delivery import send_chart_telegram
from bot.render.telegram import MAX_TEXT, TelegramMessage, TelegramRenderer
from orchestrator import (
    STORES_UNAVAILABLE,
    CopyGone,
    Message,
    Operations,
    OutboxItem,
    Requester,
    RetryLater,
    Settings,
    buttons,
    deliver_due,
    words,
)

log = structlog.get_logger(__name__)

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
RUN_COMMANDS = ("pause", "resume", "cancel", "replay")
MAX_ANSWER = 200  # answerCallbackQuery's text limit

renderer = TelegramRenderer()


def requester(user_id: int, chat_id: int | str) -> Requester:
    # A private chat with the bot has the user's own id; groups and channels have others (negative ones).
    return Requester(identity=f"{CHANNEL}:{user_id}", channel=CHANNEL, conversation=str(chat_id),
                     private=str(chat_id) == str(user_id))


def chat_id(conversation: str) -> int | str:
    """Telegram chat ids are integers; a public channel may be addressed as @name."""
    return int(conversation) if conversation.lstrip("-").isdigit() else conversation


async def send_part(bot: Bot, chat: int | str, rendered: TelegramMessage, index: int) -> TelegramChatMessage:
    """Send part `index`; the keyboard rides on the last, so the buttons sit under the whole message."""
    last = index == len(rendered.parts) - 1
    return await bot.send_message(chat_id=chat, text=rendered.parts[index], parse_mode=ParseMode.HTML,
                                  reply_markup=rendered.keyboard if last else None, disable_web_page_preview=True)


async def send_rendered(bot: Bot, chat: int | str, rendered: TelegramMessage) -> list[TelegramChatMessage]:
    """Send the parts in order (a direct reply: nothing to resume should one fail)."""
    return [await send_part(bot, chat, rendered, index) for index in range(len(rendered.parts))]


def build_application(ops: Operations, settings: Settings, *, polling: bool) -> Application:
    """The PTB Application with opsos's handlers; in webhook mode it has no updater of its own."""
    builder = Application.builder().token(settings.telegram_bot_token or "").base_url(settings.telegram_api_url)
    if not polling:
        builder = builder.updater(None)
    application = builder.build()
    TelegramAdapter(ops).attach(application)
    return application


class TelegramAdapter:
    """The handlers: each turns one update into one orchestrator call and renders the answer."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def attach(self, application: Application) -> None:
        application.add_handler(CommandHandler("ops", self.on_ops))
        application.add_handler(CommandHandler(["start", "help"], self.on_help))
        application.add_handler(CommandHandler(["status", *RUN_COMMANDS], self.on_command))
        application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self.on_text))
        application.add_handler(CallbackQueryHandler(self.on_callback))

    async def on_ops(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._request(update, context, " ".join(context.args or []))

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        await self._request(update, context, message.text if message and message.text else "")

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, context, await asyncio.to_thread(self.ops.handle_text, self._who(update), "help"))

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        word = (message.text or "").split()[0].lstrip("/").split("@")[0].lower() if message else "status"
        args = context.args or []
        if word in RUN_COMMANDS and not args:
            await self._reply(update, context, words.needs_run(word))
            return
        reply = await asyncio.to_thread(self.ops.handle_text, self._who(update), " ".join([word, *args]))
        await self._reply(update, context, reply)

    async def _request(self, update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
        key = f"telegram:{update.update_id}"
        # Telegram redelivers an update it thinks we missed: the first copy already made the intent.
        if await asyncio.to_thread(self.ops.seen, key):
            log.info("telegram.update_redelivered", update_id=update.update_id)
            return
        reply = await asyncio.to_thread(self.ops.handle_text, self._who(update), text, dedupe_key=key)
        await self._reply(update, context, reply)

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        answer: Message | None = words.unknown_button()
        try:
            answer = await self._press(query, context)
        finally:
            # Always answered, whatever happened: otherwise the button spins on the operator's phone.
            try:
                await query.answer(text=answer.title[:MAX_ANSWER] if answer else None)
            except TelegramError as error:
                log.warning("telegram.answer_failed", error=str(error))

    async def _press(self, query: CallbackQuery, context: ContextTypes.DEFAULT_TYPE) -> Message | None:
        pressed = buttons.read(query.data)
        if pressed is None:
            log.info("telegram.unknown_button", data=(query.data or "")[:64])
            return words.unknown_button()
        chat = query.message.chat.id if query.message else query.from_user.id
        who = requester(query.from_user.id, chat)
        if pressed.verb is buttons.Verb.WHY:
            explanation = await asyncio.to_thread(self.ops.handle_text, who, pressed.as_text())
            # Through the outbox, as a copy of the approval: its own Approve / Reject go with every other copy's.
            await asyncio.to_thread(self.ops.post, who, explanation)
            return None
        if pressed.decision is None:
            return await asyncio.to_thread(self.ops.handle_text, who, pressed.as_text())
        approval_id = pressed.argument
        decided = await asyncio.to_thread(self.ops.decide, who, approval_id, pressed.decision)
        if decided.updated is not None:
            clicked = query.message if isinstance(query.message, TelegramChatMessage) else None
            await self.update_in_place(context.bot, approval_id, decided.updated, clicked=clicked)
        return decided.reply

    async def update_in_place(self, bot: Bot, approval_id: str, updated: Message,
                              clicked: TelegramChatMessage | None) -> None:
        """Show the decision on the Telegram copies now, from the click, rather than a delivery pass later.

        The copies' edits were queued with the decision; they are sent here through the outbox's own path
        (claimed, sent, settled), so the delivery loop finds them done and no copy is edited twice. A clicked
        message opsos has no record of has no queued edit: it is edited here, its text kept, the decision added.
        """
        try:
            settings = self.ops.services.settings
            await deliver_due(self.ops.pool, channel=CHANNEL, sender=TelegramSender(bot),
                              now=self.ops.services.now(), clock=self.ops.services.now, approval_id=approval_id,
                              max_attempts=settings.outbox_max_attempts, home=settings.home_channel)
        except Exception as error:  # the database away: the queued edits stay for the delivery loop
            log.warning("telegram.update_deferred", approval=approval_id, error=str(error))
        if clicked is None:
            return
        copies = await asyncio.to_thread(self.ops.approval_messages, approval_id)
        known = {((item.delivery_ref or {}).get("chat_id"), (item.delivery_ref or {}).get("message_id"))
                 for item in copies if item.channel == CHANNEL}
        if (clicked.chat_id, clicked.message_id) in known:
            return
        decision = "\n".join(renderer.render(message=updated).parts)
        original = clicked.text_html or ""
        text = f"{original}\n\n{decision}" if original else decision
        try:
            await bot.edit_message_text(chat_id=clicked.chat_id, message_id=clicked.message_id,
                                        parse_mode=ParseMode.HTML, text=text if len(text) <= MAX_TEXT else decision)
        except BadRequest as error:
            # Already edited (a second click) or deleted: the decision is recorded either way.
            log.info("telegram.edit_skipped", chat=clicked.chat_id, message_id=clicked.message_id, error=str(error))

    def _who(self, update: Update) -> Requester:
        user, chat = update.effective_user, update.effective_chat
        return requester(user.id if user else 0, chat.id if chat else (user.id if user else 0))

    async def _reply(self, update: Update, context: ContextTypes.DEFAULT_TYPE, message: Message) -> None:
        chat = update.effective_chat
        if chat is not None:
            await send_rendered(context.bot, chat.id, renderer.render(message=message))


class TelegramSender:
    """Outbox rows for Telegram: sendMessage with HTML and the keyboard; the ref names the message with the buttons.

    Raises RetryLater when Telegram answers 429 (PTB's RetryAfter), so the outbox defers the row. A plain Bot
    has no rate limiter that would wait it out in this call, and none should: the pass would stall.
    """

    # Telegram's answers (lower case, as PTB may capitalise them) to an edit that can never land: the message or
    # the chat is gone, or the message is of a kind that cannot be edited.
    GONE = ("message to edit not found", "chat not found", "message can't be edited")
    # The edit asks for what the message already shows (an earlier attempt landed, its answer was lost): done.
    UNCHANGED = "message is not modified"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, *, item: OutboxItem, progress: Callable[[dict[str, Any]], Awaitable[None]]) -> dict[str, Any]:
        """sendMessage for each part not yet out (`item.progress` names those that are), saving each part's id
        through `progress` before the next goes, so a failure at part 2 costs a retry of part 2 on, not part 1
        twice. The ref names the last part (where the keyboard is, the one an edit changes) and every part."""
        await self.bot.initialize()  # a no-op once done; the sender may be used before the application starts
        rendered = renderer.render(message=item.message)
        chat = chat_id(item.conversation)
        done = item.progress or {}
        sent_ids: list[int] = list(done.get("message_ids") or [])
        sent_chat = done.get("chat_id", chat)
        try:
            for index in range(len(sent_ids), len(rendered.parts)):
                message = await send_part(self.bot, chat, rendered, index)
                sent_ids.append(message.message_id)
                sent_chat = message.chat_id
                if index < len(rendered.parts) - 1:
                    # The last part needs no record of its own: the row is settled with it at once.
                    await progress({"chat_id": sent_chat, "message_ids": sent_ids})
        except RetryAfter as error:
            raise _retry_later(error) from error
        ref: dict[str, Any] = {"chat_id": sent_chat, "message_id": sent_ids[-1], "message_ids": sent_ids}
        if item.message.attachments:
            # Logged, not raised: raising would mark the row failed and send the text a second time. Any
            # failure, a dropped connection as much as Telegram's refusal.
            try:
                ref["photo_ids"] = await send_chart_telegram(self.bot, chat_id=chat_id(item.conversation),
                                                             message=item.message)
            except Exception as error:
                log.warning("telegram.attachment_failed", item=item.id, error=str(error))
        return ref

    async def edit(self, *, item: OutboxItem, target: OutboxItem, message: Message) -> dict[str, Any]:
        """Edit the copy `target` to read `message`: the text of its last part (the one under which the keyboard
        sits) as first sent plus the outcome, with only the buttons still live. Raises CopyGone when Telegram
        says it cannot be edited."""
        ref = target.delivery_ref or {}
        if not ref.get("message_id"):
            raise CopyGone(f"outbox row {target.id} has no Telegram message to edit")
        await self.bot.initialize()
        rendered = renderer.render(message=message)
        # The parts before the last were sent as they render now (only the end of a copy changes), so the
        # last one sent takes the rest; should that outgrow Telegram's limit, it shows the decision alone.
        sent_parts = len(ref.get("message_ids") or [ref["message_id"]])
        text = "\n".join(rendered.parts[min(sent_parts, len(rendered.parts)) - 1:])
        if len(text) > MAX_TEXT:
            text = renderer.render(message=item.message).parts[0]
        try:
            await self.bot.edit_message_text(chat_id=ref["chat_id"], message_id=ref["message_id"], text=text,
                                             parse_mode=ParseMode.HTML, reply_markup=rendered.keyboard,
                                             disable_web_page_preview=True)
        except RetryAfter as error:
            raise _retry_later(error) from error
        except BadRequest as error:
            said = str(error).lower()
            if self.UNCHANGED in said:
                return {"chat_id": ref["chat_id"], "message_id": ref["message_id"], "unchanged": True}
            if any(reason in said for reason in self.GONE):
                raise CopyGone(f"Telegram answered {error} for {ref['chat_id']}/{ref['message_id']}") from error
            raise
        return {"chat_id": ref["chat_id"], "message_id": ref["message_id"]}


def _retry_later(error: RetryAfter) -> RetryLater:
    # An int of seconds in PTB 22, a timedelta once PTB_TIMEDELTA becomes its default.
    wait = error.retry_after
    seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
    return RetryLater(seconds, "Telegram answered 429 Too Many Requests")


class RecentUpdates:
    """The last update ids this process handled: a webhook redelivery is dropped before any handler runs.

    An id is remembered once its update was handled, not when it arrives: an update whose handling failed
    must be handled again when Telegram redelivers it.
    """

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._ids: OrderedDict[int, None] = OrderedDict()

    def seen(self, update_id: int) -> bool:
        return update_id in self._ids

    def handled(self, update_id: int) -> None:
        self._ids[update_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)


class FailedUpdates:
    """The updates whose handler raised, as python-telegram-bot's error handler reports them.

    PTB catches a handler's exception and hands it to its error handlers, so `process_update` returns as if all
    went well; without this the webhook would answer 200 to an update it lost (the database restarting under
    the handler), and Telegram never sends an update again once it got a 200. Only our stores being away counts:
    Telegram holds every later update behind one it must resend, so an update that fails for any other reason
    (a bug it would meet again) is logged and answered 200 rather than stall the bot for a day.
    """

    def __init__(self) -> None:
        self._ids: set[int] = set()

    async def record(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram.update_failed", update_id=getattr(update, "update_id", None),
                  error=f"{type(context.error).__name__}: {context.error}", exc_info=context.error)
        if isinstance(update, Update) and isinstance(context.error, STORES_UNAVAILABLE):
            self._ids.add(update.update_id)

    def take(self, update_id: int) -> bool:
        """Whether handling `update_id` failed (forgetting it: a redelivery is judged on its own)."""
        if update_id in self._ids:
            self._ids.discard(update_id)
            return True
        return False


def webhook_endpoint(application: Application, secret: str) -> Any:
    """The aiohttp handler for /telegram/webhook: 403 without the secret, 400 for what is not an Update, 500 when
    handling it failed, so that Telegram delivers it again (the intent's dedupe key makes the retry safe)."""
    recent = RecentUpdates()
    failed = FailedUpdates()
    application.add_error_handler(failed.record)

    async def handle(request: web.Request) -> web.StreamResponse:
        given = request.headers.get(SECRET_HEADER, "")
        if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("telegram.webhook_refused", reason="wrong secret token")
            return web.json_response({"error": "forbidden"}, status=403)
        try:
            data = await request.json()
            update = Update.de_json(data, application.bot) if isinstance(data, dict) else None
        except (ValueError, TypeError, KeyError):
            update = None
        if update is None:
            return web.json_response({"error": "malformed update"}, status=400)
        if recent.seen(update.update_id):
            return web.json_response({"ok": True})
        await application.process_update(update)
        if failed.take(update.update_id):
            return web.json_response({"error": "not handled, send it again"}, status=500)
        recent.handled(update.update_id)
        return web.json_response({"ok": True})

    return handle


__all__ = ["CHANNEL", "FailedUpdates", "RecentUpdates", "TelegramAdapter", "TelegramSender", "build_application",
           "chat_id", "requester", "send_rendered", "webhook_endpoint"]
