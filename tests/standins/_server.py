"""What every HTTP stand-in shares: an aiohttp app served from its own thread, and what it recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal, Self

from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, Field

# error: a 5xx; ratelimited: a 429 with Retry-After; slow: the real answer, late; drop: the call takes effect
# (a message is posted, an update recorded) and the connection is cut before any answer, so the client
# cannot tell whether it happened.
FailureKind = Literal["error", "ratelimited", "slow", "drop"]


class Call(BaseModel):
    """One request a stand-in received, parsed, with the answer it gave."""

    method: str
    http_method: str
    path: str
    params: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    files: dict[str, bytes] = Field(default_factory=dict)
    status: int = 200
    response: Any = None


class Failure(BaseModel):
    kind: FailureKind
    retry_after: int = 1
    delay: float = 0.0


class Failures:
    """Failures scripted per method; the server thread takes them while the test thread adds them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # None: a call answered as usual, queued before failures that start only after some calls succeeded.
        self._queued: dict[str, deque[Failure | None]] = {}

    def add(self, method: str, times: int, kind: FailureKind, retry_after: int = 1, after: int = 0,
            delay: float = 0.0) -> None:
        with self._lock:
            queue = self._queued.setdefault(method, deque())
            queue.extend(None for _ in range(after))
            queue.extend(Failure(kind=kind, retry_after=retry_after, delay=delay) for _ in range(times))

    def take(self, method: str) -> Failure | None:
        with self._lock:
            queue = self._queued.get(method)
            return queue.popleft() if queue else None


class ParsedBody(BaseModel):
    params: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, bytes] = Field(default_factory=dict)


async def parse_body(request: web.Request) -> ParsedBody:
    """Query string plus a form, multipart or JSON body, as one flat dict; uploaded parts as bytes."""
    parsed = ParsedBody(params=dict(request.query))
    if request.method == "GET" or not request.can_read_body:
        return parsed
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            parsed.params.update(body)
        else:
            parsed.params["_json"] = body
        return parsed
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form: MultiDictProxy[Any] = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                parsed.files[key] = value.file.read()
            else:
                parsed.params[key] = value
        return parsed
    parsed.files["_body"] = await request.read()
    return parsed


def decode_json_fields(params: dict[str, Any], names: set[str]) -> dict[str, Any]:
    # Form bodies carry nested values (blocks, reply_markup…) as JSON text; tests want to assert on objects.
    decoded = dict(params)
    for name in names & decoded.keys():
        value = decoded[name]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                decoded[name] = json.loads(value)
    return decoded


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


def record(calls: list[Call], request: web.Request, method: str, *, params: dict[str, Any] | None = None,
           files: dict[str, bytes] | None = None, response: Any = None) -> Call:
    """Append to `calls` what a stand-in received: method, path, parsed params, lower-cased headers, files."""
    call = Call(method=method, http_method=request.method, path=request.path, params=params or {},
                headers=lower_headers(request.headers), files=files or {}, response=response)
    calls.append(call)
    return call


def answer(call: Call, status: int, headers: dict[str, str], payload: Any) -> web.Response:
    """Answer a recorded call with JSON, and record the answer on it."""
    call.status, call.response = status, payload
    return web.json_response(payload, status=status, headers=headers)


async def delay(failure: Failure | None) -> None:
    """Wait out a scripted `slow` failure before the call is handled."""
    if failure is not None and failure.kind == "slow":
        await asyncio.sleep(failure.delay)


def cut(request: web.Request, call: Call, response: web.Response) -> web.StreamResponse:
    """The answer of a scripted `drop`: the call took effect, but the connection closes before any byte of
    `response` leaves, as when a server (or a proxy) dies after doing the work."""
    call.status, call.response = 0, {"dropped": True, "would_answer": call.response}
    if request.transport is not None:
        request.transport.abort()
    return response


async def _cancel_leftovers() -> None:
    # A long-poll still waiting when the server stops would otherwise die with "Task was destroyed".
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


class StandIn:
    """An aiohttp app on 127.0.0.1 (a free port), run by a background thread with its own event loop.

    Usable from sync and async tests alike: the test's own loop (if any) never serves requests.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.failures = Failures()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        # A short shutdown timeout: a long-poll still open at stop() must not hold the test for a minute.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        asyncio.run_coroutine_threadsafe(_cancel_leftovers(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = self._runner = None

    def call_soon(self, callback: Any, *args: Any) -> None:
        """Run `callback` on the server's loop, from any thread (used to wake waiting long-polls)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(callback, *args)

    def fail_next(self, method: str, times: int = 1, *, kind: FailureKind = "error", retry_after: int = 1,
                  after: int = 0) -> None:
        """Answer the next `times` calls of `method` with a server error, or a 429 with Retry-After; with `after`,
        only once that many calls of `method` were answered as usual (the second part of a long message)."""
        self.failures.add(method, times, kind, retry_after, after)

    def slow_next(self, method: str, times: int = 1, *, seconds: float) -> None:
        """Answer the next `times` calls of `method` as usual, but only after `seconds`."""
        self.failures.add(method, times, "slow", delay=seconds)

    def drop_next(self, method: str, times: int = 1) -> None:
        """Carry out the next `times` calls of `method`, then cut the connection before answering (the call's
        `status` is recorded as 0): whatever they posted stays posted."""
        self.failures.add(method, times, "drop")

    def record(self, request: web.Request, method: str, *, params: dict[str, Any] | None = None,
               files: dict[str, bytes] | None = None, response: Any = None) -> Call:
        """Keep a received request as a Call, before it is answered (`answer` fills in what was answered)."""
        return record(self.calls, request, method, params=params, files=files, response=response)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def last(self, method: str) -> Call:
        """The latest call of `method`; fails the test with what was called instead when there is none."""
        for call in reversed(self.calls):
            if call.method == method:
                return call
        raise AssertionError(f"no {method} call; received: {[call.method for call in self.calls]}")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
