"""A local Telegram Bot API: answers python-telegram-bot as Telegram does, with its limits, and records calls."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from typing import Any

from aiohttp import web

from tests.standins._server import Call, Failure, StandIn, answer, cut, delay, parse_body

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA_BYTES = 64

# PTB sends strings as they are and everything else as JSON text; these must stay strings even if they parse.
_STRING_FIELDS = {
    "text",
    "caption",
    "parse_mode",
    "callback_query_id",
    "url",
    "secret_token",
    "ip_address",
    "inline_message_id",
    "business_connection_id",
    "message_effect_id",
    "photo",
}


class TelegramError(Exception):
    """A refusal the stand-in answers with Telegram's error body."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


def _bad(description: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {description}")


class TelegramStandIn(StandIn):
    """Telegram at `{url}/bot<token>/<method>`: `Bot(token, base_url=stand_in.base_url)`.

    Only `token` is accepted (401 Unauthorized otherwise). getUpdates long-polls at most `max_poll_seconds`.
    """

    def __init__(
        self,
        *,
        token: str = "7000000001:opsos-test-token",
        bot_username: str = "opsos_bot",
        max_poll_seconds: float = 0.5,
    ) -> None:
        super().__init__()
        self.token, self.max_poll_seconds = token, max_poll_seconds
        self.bot = {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": "opsos",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.webhook_url = ""
        self.commands: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._updates: list[dict[str, Any]] = []
        self._update_arrived: asyncio.Event | None = None
        self._messages: dict[tuple[int | str, int], dict[str, Any]] = {}
        self._callbacks: set[str] = set()
        self._update_ids = itertools.count(100_000_001)
        self._last_message_id = 0
        self._invented: set[tuple[int | str, int]] = set()
        self._callback_ids = itertools.count(1)
        self._file_ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        """For `Bot(base_url=…)` / `ApplicationBuilder().base_url(…)`."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._api)

    async def _serve(self) -> None:
        self._update_arrived = asyncio.Event()
        await super()._serve()

    # -- helpers for tests ------------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (an `update_id` is added when missing); returns it."""
        update = {"update_id": next(self._update_ids), **update}
        with self._lock:
            self._updates.append(update)
        if self._update_arrived is not None:
            self.call_soon(self._update_arrived.set)
        return update

    def push_message(
        self,
        user_id: int,
        chat_id: int,
        text: str,
        *,
        first_name: str = "Operator",
        username: str | None = "operator",
    ) -> dict[str, Any]:
        """A user's text message; a leading /command gets its bot_command entity, as Telegram adds it."""
        with self._lock:
            message_id = self._next_message_id()
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": _user(user_id, first_name, username),
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self.push_update({"message": message})

    def push_callback(
        self,
        user_id: int,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        first_name: str = "Operator",
        username: str | None = "operator",
    ) -> dict[str, Any]:
        """A button click on `message_id`; answerCallbackQuery needs the update's `callback_query.id`."""
        with self._lock:
            message = self._messages.get((chat_id, message_id))
            if message is None:
                # A message the stand-in never sent (made up by the test): invent it so edits can still land.
                message = self._new_message(chat_id, {"text": "…"}, message_id=message_id)
                self._invented.add((chat_id, message_id))
            query_id = f"{user_id}{next(self._callback_ids):06d}"
            self._callbacks.add(query_id)
        query = {
            "id": query_id,
            "chat_instance": f"ci{chat_id}",
            "data": data,
            "message": dict(message),
            "from": _user(user_id, first_name, username),
        }
        return self.push_update({"callback_query": query})

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent, oldest first, as they now read (edits applied).

        A message invented for push_callback counts only once the bot edited it.
        """
        with self._lock:
            return [
                dict(m)
                for key, m in self._messages.items()
                if (chat_id is None or key[0] == chat_id) and (key not in self._invented or "edit_date" in m)
            ]

    # -- the wire -----------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        requested = request.match_info["method"]
        method = _CANONICAL.get(requested.lower(), requested)
        body = await parse_body(request)
        params = {k: v if k in _STRING_FIELDS else _json_or_str(v) for k, v in body.params.items()}
        call = self.record(request, method, params=params, files=body.files)
        token = request.match_info["token"]
        failure = self.failures.take(method) if token == self.token else None
        await delay(failure)
        response = answer(call, *await self._answer(token, method, call, failure))
        return cut(request, call, response) if failure is not None and failure.kind == "drop" else response

    async def _answer(self, token: str, method: str, call: Call,
                      failure: Failure | None) -> tuple[int, dict[str, str], dict[str, Any]]:
        try:
            if token != self.token:
                raise TelegramError(401, "Unauthorized")
            if failure and failure.kind == "ratelimited":
                raise TelegramError(
                    429,
                    f"Too Many Requests: retry after {failure.retry_after}",
                    {"retry_after": failure.retry_after},
                )
            if failure and failure.kind == "error":
                raise TelegramError(500, "Internal Server Error")
            handler = _HANDLERS.get(method)
            if handler is None:
                raise TelegramError(404, "Not Found")
            result = await handler(self, call)
        except TelegramError as error:
            payload: dict[str, Any] = {
                "ok": False,
                "error_code": error.code,
                "description": error.description,
            }
            if error.parameters:
                payload["parameters"] = error.parameters
            headers = {"Retry-After": str(error.parameters["retry_after"])} if error.code == 429 else {}
            return error.code, headers, payload
        return 200, {}, {"ok": True, "result": result}

    # -- methods ------------------------------------------------------------------------------------

    async def _get_me(self, _call: Call) -> Any:
        return self.bot

    async def _get_updates(self, call: Call) -> Any:
        if self.webhook_url:
            raise TelegramError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset, limit = int(call.params.get("offset") or 0), int(call.params.get("limit") or 100)
        wait = min(float(call.params.get("timeout") or 0), self.max_poll_seconds)
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                if offset:
                    # An offset confirms every update before it: Telegram forgets them.
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                pending = self._updates[:limit]
                assert self._update_arrived is not None
                self._update_arrived.clear()
            remaining = deadline - time.monotonic()
            if pending or remaining <= 0:
                return pending
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._update_arrived.wait(), remaining)

    async def _send_message(self, call: Call) -> Any:
        text = str(call.params.get("text") or "")
        _check_text(text)
        _check_markup(call.params.get("reply_markup"))
        with self._lock:
            return self._new_message(_chat_id(call), _content(call.params, "text"))

    async def _edit_text(self, call: Call) -> Any:
        _check_text(str(call.params.get("text") or ""))
        _check_markup(call.params.get("reply_markup"))
        with self._lock:
            message = self._editable(call)
            content = _content(call.params, "text")
            # Telegram drops the inline keyboard when an edit does not resend it.
            if all(message.get(k) == content.get(k) for k in ("text", "reply_markup")):
                raise _not_modified()
            message.pop("reply_markup", None)
            message.update(content, edit_date=int(time.time()))
            return dict(message)

    async def _edit_markup(self, call: Call) -> Any:
        markup = call.params.get("reply_markup")
        _check_markup(markup)
        with self._lock:
            message = self._editable(call)
            if message.get("reply_markup") == markup:
                raise _not_modified()
            message.pop("reply_markup", None)
            if markup:
                message["reply_markup"] = markup
            message["edit_date"] = int(time.time())
            return dict(message)

    async def _delete_message(self, call: Call) -> Any:
        # As on Telegram: the message is gone, and an edit of it answers "message to edit not found".
        with self._lock:
            key = (_chat_id(call), int(call.params.get("message_id") or 0))
            if self._messages.pop(key, None) is None:
                raise _bad("message to delete not found")
        return True

    async def _answer_callback(self, call: Call) -> Any:
        with self._lock:
            if str(call.params.get("callback_query_id")) not in self._callbacks:
                raise _bad("query is too old and response timeout expired or query ID is invalid")
        return True

    async def _send_photo(self, call: Call) -> Any:
        caption = str(call.params.get("caption") or "")
        if len(caption) > MAX_CAPTION:
            raise _bad("message caption is too long")
        _check_markup(call.params.get("reply_markup"))
        photo = call.params.get("photo")
        data = call.files.get("photo")
        if data is None and isinstance(photo, str) and photo.startswith("attach://"):
            data = call.files.get(photo.removeprefix("attach://"))
        if data is None and not photo:
            raise _bad("there is no photo in the request")
        number = next(self._file_ids)
        size = {
            "file_id": f"AgAD{number:08d}",
            "file_unique_id": f"AQAD{number:08d}",
            "width": 320,
            "height": 240,
            "file_size": len(data) if data is not None else 0,
        }
        content = _content(call.params, "caption")
        content["photo"] = [size]
        with self._lock:
            return self._new_message(_chat_id(call), content)

    async def _set_webhook(self, call: Call) -> Any:
        self.webhook_url = str(call.params.get("url") or "")
        if call.params.get("drop_pending_updates"):
            self._drop_updates()
        return True

    async def _delete_webhook(self, call: Call) -> Any:
        self.webhook_url = ""
        if call.params.get("drop_pending_updates"):
            self._drop_updates()
        return True

    async def _webhook_info(self, _call: Call) -> Any:
        with self._lock:
            pending = len(self._updates)
        return {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": pending}

    async def _set_commands(self, call: Call) -> Any:
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise _bad("commands must be an array")
        self.commands = commands
        return True

    async def _get_commands(self, _call: Call) -> Any:
        return self.commands

    # -- state --------------------------------------------------------------------------------------

    def _drop_updates(self) -> None:
        with self._lock:
            self._updates.clear()

    def _next_message_id(self, wanted: int | None = None) -> int:
        # Ids only grow, also past one a test made up, so a later message never reuses it.
        self._last_message_id = max(self._last_message_id, wanted or self._last_message_id + 1)
        return wanted or self._last_message_id

    def _chat(self, chat_id: int | str) -> dict[str, Any]:
        if isinstance(chat_id, int) and chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Operator"}
        return {"id": chat_id, "type": "supergroup", "title": "ops"}

    def _new_message(
        self, chat_id: int | str, content: dict[str, Any], *, message_id: int | None = None
    ) -> dict[str, Any]:
        # Caller holds self._lock.
        message = {
            "message_id": self._next_message_id(message_id),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": self.bot,
            **content,
        }
        self._messages[(chat_id, message["message_id"])] = message
        return dict(message)

    def _editable(self, call: Call) -> dict[str, Any]:
        # Caller holds self._lock.
        key = (_chat_id(call), int(call.params.get("message_id") or 0))
        message = self._messages.get(key)
        if message is None:
            raise _bad("message to edit not found")
        return message


def _user(user_id: int, first_name: str, username: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username:
        user["username"] = username
    return user


def _json_or_str(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _chat_id(call: Call) -> int | str:
    chat_id = call.params.get("chat_id")
    if chat_id is None or chat_id == "":
        raise _bad("chat not found")
    return chat_id if isinstance(chat_id, int) else str(chat_id)


def _content(params: dict[str, Any], field: str) -> dict[str, Any]:
    content = {field: str(params.get(field) or "")}
    for key in ("reply_markup", "entities", "caption_entities"):
        if params.get(key):
            content[key] = params[key]
    return content


def _check_text(text: str) -> None:
    # Telegram counts characters after entity parsing; counting the raw text is stricter for HTML/Markdown.
    if not text.strip():
        raise _bad("message text is empty")
    if len(text) > MAX_TEXT:
        raise _bad("message is too long")


def _check_markup(markup: Any) -> None:
    if not isinstance(markup, dict):
        return
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and len(str(data).encode()) > MAX_CALLBACK_DATA_BYTES:
                raise _bad("BUTTON_DATA_INVALID")


def _not_modified() -> TelegramError:
    return _bad(
        "message is not modified: specified new message content and reply markup are exactly the "
        "same as a current content and reply markup of the message"
    )


_HANDLERS = {
    "getMe": TelegramStandIn._get_me,
    "getUpdates": TelegramStandIn._get_updates,
    "sendMessage": TelegramStandIn._send_message,
    "editMessageText": TelegramStandIn._edit_text,
    "editMessageReplyMarkup": TelegramStandIn._edit_markup,
    "deleteMessage": TelegramStandIn._delete_message,
    "answerCallbackQuery": TelegramStandIn._answer_callback,
    "sendPhoto": TelegramStandIn._send_photo,
    "setWebhook": TelegramStandIn._set_webhook,
    "deleteWebhook": TelegramStandIn._delete_webhook,
    "getWebhookInfo": TelegramStandIn._webhook_info,
    "setMyCommands": TelegramStandIn._set_commands,
    "getMyCommands": TelegramStandIn._get_commands,
}
# Telegram matches method names case-insensitively.
_CANONICAL = {name.lower(): name for name in _HANDLERS}
