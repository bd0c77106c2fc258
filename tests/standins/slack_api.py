"""A local Slack Web API: answers slack_sdk's calls like Slack does and records each one."""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
import time
from typing import Any

from aiohttp import web

from tests.standins._server import Call, Failure, StandIn, answer, cut, decode_json_fields, delay, parse_body

# Slack takes these as JSON text inside form bodies.
_JSON_FIELDS = {"blocks", "attachments", "files", "metadata", "view", "unfurls"}


class SlackStandIn(StandIn):
    """Slack at `{url}/api/<method>`: point `WebClient(token, base_url=f"{url}/api/")` at it.

    `token`, when given, is the only bot token accepted; otherwise any `xoxb-`/`xoxp-` token is.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        team_id: str = "T0OPSOS",
        team: str = "opsos-test",
        bot_user_id: str = "U0OPSBOT",
        bot_id: str = "B0OPSBOT",
    ) -> None:
        super().__init__()
        self.token, self.team_id, self.team = token, team_id, team
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self.users: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self._messages: list[dict[str, Any]] = []
        self._ephemeral: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        # Slack's ts are microsecond timestamps, unique per channel and increasing; one counter covers both.
        self._last_ts = 0
        self._ts_lock = threading.Lock()
        self._file_ids = itertools.count(1)
        self.add_user(bot_user_id, name="opsos", is_bot=True)

    @property
    def api_url(self) -> str:
        """What to pass as slack_sdk's `base_url`."""
        return f"{self.url}/api/"

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{response_id}", self._response_url)

    # -- helpers for tests ------------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        real_name: str | None = None,
        email: str | None = None,
        tz: str = "UTC",
        is_bot: bool = False,
        is_admin: bool = False,
    ) -> dict[str, Any]:
        """Make `users.info` know `user_id` (unknown users get `user_not_found`, as on Slack)."""
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name or name,
            "deleted": False,
            "is_bot": is_bot,
            "is_admin": is_admin,
            "tz": tz,
            "tz_offset": 0,
            "profile": {"real_name": real_name or name, "display_name": name, "email": email},
        }
        self.users[user_id] = user
        return user

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages posted with chat.postMessage, oldest first, as they now read (chat.update applied)."""
        with self._lock:
            return [dict(m) for m in self._messages if channel is None or m["channel"] == channel]

    def ephemeral(self, channel: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._ephemeral if channel is None or m["channel"] == channel]

    def responses(self, response_id: str | None = None) -> list[dict[str, Any]]:
        """Bodies POSTed to response_urls the signer handed out (`/response/<id>`), oldest first."""
        return [
            call.params
            for call in self.calls_to("response_url")
            if response_id is None or call.path.endswith(f"/{response_id}")
        ]

    def files(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Files shared with files.completeUploadExternal (id, filename, title, channel, data bytes…)."""
        return [
            dict(f) for f in self.uploads.values() if f["completed"] and (channel is None or f["channel"] == channel)
        ]

    # -- the wire -----------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await parse_body(request)
        params = decode_json_fields(body.params, _JSON_FIELDS)
        call = self.record(request, method, params=params, files=body.files)
        failure = None if self._auth_error(call) else self.failures.take(method)
        await delay(failure)
        response = answer(call, *self._answer(method, call, failure))
        return cut(request, call, response) if failure is not None and failure.kind == "drop" else response

    def _answer(self, method: str, call: Call, failure: Failure | None) -> tuple[int, dict[str, str], dict[str, Any]]:
        auth_error = self._auth_error(call)
        if auth_error:
            # Slack answers auth failures with HTTP 200 and ok: false.
            return 200, {}, {"ok": False, "error": auth_error}
        if failure and failure.kind == "ratelimited":
            return 429, {"Retry-After": str(failure.retry_after)}, {"ok": False, "error": "ratelimited"}
        if failure and failure.kind == "error":
            return 500, {}, {"ok": False, "error": "internal_error"}
        handler = _HANDLERS.get(method)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method"}
        return 200, {}, handler(self, call.params)

    def _auth_error(self, call: Call) -> str | None:
        header = call.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else call.params.get("token")
        if not token:
            return "not_authed"
        if self.token is not None and token != self.token:
            return "invalid_auth"
        if self.token is None and not str(token).startswith(("xoxb-", "xoxp-")):
            return "invalid_auth"
        return None

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        data = await request.read()
        self.record(request, "upload", files={"file": data}, response=f"OK - {len(data)}")
        if file_id not in self.uploads:
            return web.Response(status=404, text="file not found")
        self.uploads[file_id]["data"] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await parse_body(request)
        self.record(request, "response_url", params=body.params, response={"ok": True})
        return web.json_response({"ok": True})

    # -- methods ------------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        # As on Slack: the post's time in microseconds, unique and rising within the stand-in (history's `oldest`
        # filters on it).
        with self._ts_lock:
            value = max(time.time_ns() // 1000, self._last_ts + 100)
            self._last_ts = value
        return f"{value // 1_000_000}.{value % 1_000_000:06d}"

    def _auth_test(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team}.slack.com/",
            "team": self.team,
            "user": "opsos",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if str(channel).startswith(("U", "W")):
            # As on Slack: a user id posts into the bot's direct message with that user, and the answer names it.
            channel = _dm_channel(str(channel))
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            return {"ok": False, "error": "no_text"}
        message = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "ts": self._next_ts(),
            "text": params.get("text", ""),
            "team": self.team_id,
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if params.get(key) is not None:
                message[key] = params[key]
        with self._lock:
            self._messages.append({"channel": channel, **message})
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        with self._lock:
            found = next((m for m in self._messages if m["channel"] == channel and m["ts"] == ts), None)
            if found is None:
                return {"ok": False, "error": "message_not_found"}
            for key in ("text", "blocks", "attachments", "metadata"):
                if key in params:
                    found[key] = params[key]
            found["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
            message = {k: v for k, v in found.items() if k != "channel"}
        return {"ok": True, "channel": channel, "ts": ts, "text": message.get("text", ""), "message": message}

    def _delete(self, params: dict[str, Any]) -> dict[str, Any]:
        # As on Slack: the message is gone, and chat.update on it answers message_not_found from then on.
        channel, ts = params.get("channel"), params.get("ts")
        with self._lock:
            found = next((m for m in self._messages if m["channel"] == channel and m["ts"] == ts), None)
            if found is None:
                return {"ok": False, "error": "message_not_found"}
            self._messages.remove(found)
        return {"ok": True, "channel": channel, "ts": ts}

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        ts = self._next_ts()
        with self._lock:
            self._ephemeral.append(
                {
                    "channel": params["channel"],
                    "user": params["user"],
                    "ts": ts,
                    "text": params.get("text", ""),
                    "blocks": params.get("blocks"),
                }
            )
        return {"ok": True, "message_ts": ts}

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        """conversations.history as Slack answers it: newest first, after `oldest`, `limit` at most (100 unless
        given, 999 at most), a message's `metadata` only with `include_all_metadata`; a longer history goes on at
        `response_metadata.next_cursor` (Slack's own form, base64 of `next_ts:<ts>`), passed back as `cursor`.
        A user id is no conversation: its direct message's id comes from conversations.open."""
        channel = str(params.get("channel", ""))
        if not channel.startswith(("C", "D", "G")):
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(params.get("oldest") or 0)
        before = float(params.get("latest") or "inf")
        if params.get("cursor"):
            try:
                before = min(before, float(base64.b64decode(str(params["cursor"])).decode().removeprefix("next_ts:")))
            except ValueError:
                return {"ok": False, "error": "invalid_cursor"}
        limit = min(int(params.get("limit") or 100), 999)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        with self._lock:
            found = [dict(m) for m in self._messages if m["channel"] == channel and oldest < float(m["ts"]) < before]
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        page, rest = found[:limit], found[limit:]
        messages = [{k: v for k, v in m.items() if k != "channel" and (with_metadata or k != "metadata")}
                    for m in page]
        answer: dict[str, Any] = {"ok": True, "messages": messages, "has_more": bool(rest), "pin_count": 0}
        if rest:
            cursor = base64.b64encode(f"next_ts:{page[-1]['ts']}".encode()).decode()
            answer["response_metadata"] = {"next_cursor": cursor}
        return answer

    def _open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = params.get("users")
        if params.get("channel"):
            return {"ok": True, "channel": {"id": params["channel"]}}
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        return {"ok": True, "no_op": False, "already_open": False, "channel": {"id": _dm_channel(str(users))}}

    def _get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("filename") or not params.get("length"):
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._file_ids):09d}"
        self.uploads[file_id] = {
            "id": file_id,
            "filename": params["filename"],
            "length": int(params["length"]),
            "data": None,
            "completed": False,
        }
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        done = []
        for entry in files:
            upload = self.uploads.get(entry.get("id", ""))
            if upload is None or upload["data"] is None:
                return {"ok": False, "error": "file_not_found"}
            channel = params.get("channel_id") or params.get("channels")
            upload.update(
                completed=True,
                title=entry.get("title") or upload["filename"],
                channel=channel,
                initial_comment=params.get("initial_comment"),
                thread_ts=params.get("thread_ts"),
            )
            done.append(
                {
                    "id": upload["id"],
                    "name": upload["filename"],
                    "title": upload["title"],
                    "size": len(upload["data"]),
                    "channels": [channel] if channel else [],
                }
            )
        return {"ok": True, "files": done}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(params.get("user", "")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}


def _dm_channel(users: str) -> str:
    # The same people always get the same DM channel, as on Slack.
    key = ",".join(sorted(users.split(",")))
    return "D" + hashlib.sha256(key.encode()).hexdigest()[:10].upper()


_HANDLERS = {
    "auth.test": SlackStandIn._auth_test,
    "chat.postMessage": SlackStandIn._post_message,
    "chat.update": SlackStandIn._update,
    "chat.delete": SlackStandIn._delete,
    "chat.postEphemeral": SlackStandIn._post_ephemeral,
    "conversations.history": SlackStandIn._history,
    "conversations.open": SlackStandIn._open,
    "files.getUploadURLExternal": SlackStandIn._get_upload_url,
    "files.completeUploadExternal": SlackStandIn._complete_upload,
    "users.info": SlackStandIn._users_info,
}
