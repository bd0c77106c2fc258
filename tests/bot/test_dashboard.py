"""The dashboard: one-time sign-in link, session-only pages, CSRF on actions, /metrics, and a real headless Chromium."""
import asyncio
import re
import shutil
import threading
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.dashboard import COOKIE, add_dashboard
from orchestrator import Message, MessageKind, outbox
from orchestrator.runs import RunEvent
from tests.orchestrator.helpers import (
    OPERATOR,
    STRANGER,
    WINBACK,
    operations,
    run_state,
    seed,
    to_approval,
)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _app(services) -> web.Application:
    app = web.Application()
    add_dashboard(app, operations(services))
    return app


def _link_path(services) -> str:
    reply = operations(services).handle_text(OPERATOR, "dashboard")
    match = re.search(r"https?://[^/\s]+(/login/[\w-]+)", reply.text)
    assert match, reply.text
    return match.group(1)


async def _client(services) -> TestClient:
    client = TestClient(TestServer(_app(services)))
    await client.start_server()
    return client


async def _signed_in(services) -> TestClient:
    client = await _client(services)
    response = await client.post(_link_path(services), allow_redirects=False)
    assert response.status == 303
    return client


async def test_nothing_answers_without_a_session(services, db):
    client = await _client(services)
    try:
        for method, path in [("GET", "/"), ("GET", "/runs/1"), ("GET", "/metrics"), ("POST", "/runs/1/resume")]:
            response = await client.request(method, path, allow_redirects=False)
            assert response.status == 401, path
        assert "/ops dashboard" in await (await client.get("/")).text()
    finally:
        await client.close()


async def test_sign_in_link_works_once_and_sets_an_httponly_cookie(services, db):
    client = await _client(services)
    try:
        path = _link_path(services)
        # A link preview's GET must not spend it.
        assert (await client.get(path)).status == 200
        response = await client.post(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/"
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert (await client.get("/")).status == 200
        client.session.cookie_jar.clear()
        assert (await client.post(path, allow_redirects=False)).status == 401
    finally:
        await client.close()


async def test_a_stranger_gets_no_link(services, db):
    reply = operations(services).handle_text(STRANGER, "dashboard")
    assert "/login/" not in reply.text and reply.kind == "refusal"


async def test_actions_without_the_csrf_token_are_refused(services, db):
    ops = operations(services)
    ops.submit(OPERATOR, WINBACK)
    client = await _signed_in(services)
    try:
        response = await client.post("/runs/1/pause", data={"csrf": "forged"}, allow_redirects=False)
        assert response.status == 403
        assert run_state(db, 1) == "queued"
        page = await (await client.get("/runs/1")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        response = await client.post("/runs/1/pause", data={"csrf": csrf}, allow_redirects=False)
        assert response.status == 303 and run_state(db, 1) == "paused"
    finally:
        await client.close()


def _metric(text: str, name: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name)


async def test_metrics_parse_and_move_when_an_intent_is_made(services, db):
    services.settings.metrics_token = "scrape-secret"
    client = await _client(services)
    headers = {"Authorization": "Bearer scrape-secret"}
    try:
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
        before = await (await client.get("/metrics", headers=headers)).text()
        operations(services).submit(OPERATOR, WINBACK)
        after = await (await client.get("/metrics", headers=headers)).text()
    finally:
        await client.close()
    assert _metric(after, "opsos_intents_total") == _metric(before, "opsos_intents_total") + 1
    assert _metric(after, "opsos_queue_depth") == _metric(before, "opsos_queue_depth") + 1
    names = {family.name for family in text_string_to_metric_families(after)}
    assert {"opsos_intents", "opsos_runs", "opsos_run_duration_seconds", "opsos_queue_depth",
            "opsos_pending_approvals", "opsos_model_spend_usd", "opsos_connector_errors",
            "opsos_delivery_retries"} <= names


async def test_dead_messages_are_counted_on_the_page_and_in_metrics(services, db):
    """A message given up on shows on the main page with how to send it again, and as opsos_outbox_dead."""
    with db.connection() as conn, conn.transaction():
        item_id = outbox.post(conn, channel="telegram", conversation="42",
                              message=Message(kind=MessageKind.NOTICE, title="Weekly digest"))
        conn.execute("UPDATE outbox SET state = 'dead', attempts = 72, last_error = 'boom' WHERE id = %s",
                     (item_id,))
    client = await _signed_in(services)
    try:
        page = await (await client.get("/")).text()
        metrics = await (await client.get("/metrics")).text()
    finally:
        await client.close()
    assert "Undelivered messages (1)" in page and "telegram: 1" in page and "opsos outbox retry-dead" in page
    assert _metric(metrics, "opsos_outbox_dead") == 1


class LiveServer:
    """The dashboard on a real port, served from a thread with its own event loop, for the browser."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> "LiveServer":
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed: apt-get install -y chromium")
def test_dashboard_in_headless_chromium(services, db, work):
    from playwright.sync_api import sync_playwright

    seed(services)
    ops, approval = to_approval(services, work)
    ops.submit(OPERATOR, WINBACK)
    ops.change_run(OPERATOR, 2, RunEvent.PAUSE)
    with LiveServer(_app(services)) as server, sync_playwright() as playwright:
        services.settings.dashboard_url = f"http://127.0.0.1:{server.port}"
        link = re.search(r"http://\S+", ops.handle_text(OPERATOR, "dashboard").text).group(0)
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 412, "height": 915})  # a phone
            page.goto(link)
            page.wait_for_url(f"http://127.0.0.1:{server.port}/")
            assert "Run #1" in page.locator("#approvals").inner_text()
            assert page.locator(f"form[action='/approvals/{approval}/approve'] button").is_visible()
            assert "Chain verified" in page.locator("#chain").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            page.goto(f"http://127.0.0.1:{server.port}/runs/2")
            page.locator("form[action='/runs/2/resume'] button").click()
            page.wait_for_url(re.compile(r".*/runs/2\?notice=.*"))
            assert "resumed" in page.locator(".notice").inner_text()
            assert run_state(db, 2) == "queued"
            stranger = browser.new_context().new_page()
            assert stranger.goto(f"http://127.0.0.1:{server.port}/").status == 401
            assert stranger.goto(f"http://127.0.0.1:{server.port}/runs/2").status == 401
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
