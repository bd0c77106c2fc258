"""A local OpenAI chat-completions endpoint that answers with scripted replies and records each request."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from tests.standins._server import Call, FailureKind, StandIn, answer


class Usage(BaseModel):
    """Token counts sent back exactly as given; `total_tokens` defaults to their sum."""

    prompt_tokens: int = 10
    completion_tokens: int = 5
    total_tokens: int = -1

    @model_validator(mode="after")
    def _total(self) -> Usage:
        if self.total_tokens < 0:
            self.total_tokens = self.prompt_tokens + self.completion_tokens
        return self


class ToolCall(BaseModel):
    name: str
    arguments: dict[str, Any]
    id: str = ""


class Reply(BaseModel):
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)


class OpenAIStandIn(StandIn):
    """OpenAI at `{url}/v1`: `ChatOpenAI(base_url=stand_in.base_url, api_key="test-key")`.

    Each request takes the next scripted reply; with none left it answers 400 so the test fails loudly.
    """

    def __init__(self, *, api_key: str = "test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._completions)

    # -- helpers for tests ------------------------------------------------------------------------

    def script_text(self, text: str, *, usage: Usage | dict[str, int] | None = None) -> None:
        self._script(Reply(content=text, usage=_usage(usage)))

    def script_tool_call(
        self, name: str, arguments: dict[str, Any] | BaseModel, *, usage: Usage | dict[str, int] | None = None
    ) -> None:
        """A reply calling one tool: what with_structured_output(method="function_calling") parses."""
        self.script_tool_calls([(name, arguments)], usage=usage)

    def script_tool_calls(
        self,
        calls: list[tuple[str, dict[str, Any] | BaseModel]],
        *,
        usage: Usage | dict[str, int] | None = None,
    ) -> None:
        tool_calls = [
            ToolCall(name=name, arguments=args.model_dump(mode="json") if isinstance(args, BaseModel) else args)
            for name, args in calls
        ]
        self._script(Reply(tool_calls=tool_calls, usage=_usage(usage)))

    def fail_next_requests(self, times: int = 1, *, kind: FailureKind = "error", retry_after: int = 0) -> None:
        """The next `times` requests get a 500 (kind="error") or a 429 with Retry-After ("ratelimited")."""
        self.fail_next("chat.completions", times, kind=kind, retry_after=retry_after)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Request bodies (model, messages, tools, tool_choice…), oldest first."""
        return [call.params for call in self.calls_to("chat.completions")]

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    def _script(self, reply: Reply) -> None:
        with self._lock:
            self._replies.append(reply)

    # -- the wire -----------------------------------------------------------------------------------

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        call = self.record(request, "chat.completions", params=body)
        refusal = self._refusal(call)
        if refusal is not None:
            return answer(call, *refusal)
        with self._lock:
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            payload = _error("openai stand-in: no scripted reply left for this request", "invalid_request_error", None)
            return answer(call, 400, {}, payload)
        completion = self._completion(body, reply)
        call.response = completion
        if body.get("stream"):
            return await self._stream(request, body, completion, reply)
        return web.json_response(completion)

    def _refusal(self, call: Call) -> tuple[int, dict[str, str], dict[str, Any]] | None:
        auth = call.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            return 401, {}, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        failure = self.failures.take("chat.completions")
        if failure and failure.kind == "ratelimited":
            # retry-after-ms lets the openai client retry at once instead of sleeping whole seconds.
            headers = {
                "Retry-After": str(failure.retry_after),
                "retry-after-ms": str(failure.retry_after * 1000),
            }
            return 429, headers, _error("Rate limit reached.", "requests", "rate_limit_exceeded")
        if failure:
            return 500, {"retry-after-ms": "0"}, _error("The server had an error.", "server_error", None)
        return None

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{next(self._ids):08d}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-{next(self._ids):08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-test"),
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": reply.usage.model_dump(),
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], completion: dict[str, Any], reply: Reply
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
        base["object"] = "chat.completion.chunk"

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            await response.write(f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode())

        def delta(content: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}]

        await send(delta({"role": "assistant", "content": "" if reply.content is not None else None}))
        if reply.content:
            # Word by word, so a consumer sees more than one content chunk.
            for piece in reply.content.split(" ")[:-1]:
                await send(delta({"content": piece + " "}))
            await send(delta({"content": reply.content.split(" ")[-1]}))
        for index, call in enumerate(completion["choices"][0]["message"].get("tool_calls", [])):
            await send(
                delta(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
            )
            await send(
                delta({"tool_calls": [{"index": index, "function": {"arguments": call["function"]["arguments"]}}]})
            )
        await send(delta({}, completion["choices"][0]["finish_reason"]))
        if (body.get("stream_options") or {}).get("include_usage"):
            await send([], usage=completion["usage"])
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _usage(usage: Usage | dict[str, int] | None) -> Usage:
    if usage is None:
        return Usage()
    return usage if isinstance(usage, Usage) else Usage.model_validate(usage)


def _error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
