"""Sign-in links carry a secret in their path: the access log never holds one."""
from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from bot.access_log import AccessLogger, redact


@pytest.mark.parametrize(("path", "logged"), [
    ("/login/Zm9vYmFyLXNlY3JldA", "/login/…"),
    ("/login/abc?back=/runs/3", "/login/…"),
    ("/runs/3", "/runs/3"),
    ("/", "/"),
    ("/slack/events", "/slack/events"),
])
def test_the_token_is_taken_out_of_the_path(path, logged) -> None:
    assert redact(path.split("?")[0]) == logged


async def test_a_sign_in_request_is_logged_without_its_token() -> None:
    async def login(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/login/{token}", login)
    runner = web.AppRunner(app, access_log_class=AccessLogger)  # as `opsos serve` runs it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    # The line is written after the answer is sent: the capture lasts until the server has shut down.
    with capture_logs() as logs:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/login/VERY-SECRET-TOKEN"):
            pass
        await runner.cleanup()
    lines = [entry for entry in logs if entry["event"] == "http.request"]
    assert lines and lines[0]["path"] == "/login/…" and lines[0]["status"] == 200
    assert "VERY-SECRET-TOKEN" not in repr(logs)
