"""The dashboard's routes: pages and actions behind a session from a one-time link, CSRF-checked POSTs, /metrics.

Every handler that reads the database does so in a thread (`asyncio.to_thread`): psycopg's pool is
synchronous and must not block the event loop the Slack and Telegram handlers share.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.dashboard.metrics import registry
from orchestrator import Decision, NotFound, Operations, Requester, RunEvent, Session, anchors, signin, views, words

COOKIE = "opsos_session"
CHANNEL = "dashboard"


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("bot.dashboard", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    return env


class Dashboard:
    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.templates = _templates()
        self.registry = registry(ops)

    # -- sessions -----------------------------------------------------------------------------------

    def _read_session(self, session_id: str) -> Session | None:
        with self.ops.pool.connection() as conn:
            return signin.session(conn, session_id, now=self.ops.services.now())

    async def session(self, request: web.Request) -> Session | None:
        session_id = request.cookies.get(COOKIE)
        if not session_id:
            return None
        return await asyncio.to_thread(self._read_session, session_id)

    async def require(self, request: web.Request) -> Session:
        """The request's session; 401 with a page saying how to get one when there is none."""
        found = await self.session(request)
        if found is None:
            raise web.HTTPUnauthorized(text=self.render("refused.html.j2"), content_type="text/html")
        return found

    async def require_post(self, request: web.Request) -> tuple[Session, dict[str, Any]]:
        """A session and a form with its CSRF token, else 403: a page elsewhere cannot post for the operator."""
        found = await self.require(request)
        form = dict(await request.post())
        if not hmac.compare_digest(str(form.get("csrf", "")), found.csrf):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
        return found, form

    def requester(self, session: Session) -> Requester:
        return Requester(identity=session.identity, channel=CHANNEL, conversation=f"{CHANNEL}:{session.identity}",
                         private=True)

    def render(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(**context)

    def page(self, template: str, **context: Any) -> web.Response:
        response = web.Response(text=self.render(template, **context), content_type="text/html")
        # Pages carry the operator's data and CSRF token: never cached, never framed.
        response.headers.update({"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})
        return response

    # -- sign-in ------------------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        # GET does not spend the link: chat apps fetch links for previews. The page posts it back
        # (by itself when scripts run, or by the button), and only that POST signs in.
        return self.page("login.html.j2", token=request.match_info["token"])

    def _redeem(self, token: str) -> tuple[str, Session] | None:
        settings = self.ops.services.settings
        with self.ops.pool.connection() as conn, conn.transaction():
            found = signin.redeem(conn, token, now=self.ops.services.now(),
                                  ttl=timedelta(hours=settings.session_ttl_hours))
        if found is not None and not self.ops.services.policy.is_operator(found[1].identity):
            return None
        return found

    async def login(self, request: web.Request) -> web.Response:
        found = await asyncio.to_thread(self._redeem, request.match_info["token"])
        if found is None:
            raise web.HTTPUnauthorized(text=self.render("refused.html.j2", spent=True), content_type="text/html")
        session_id, session = found
        response = web.HTTPSeeOther("/")
        secure = request.secure or self.ops.services.settings.dashboard_url.startswith("https:")
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="Lax", secure=secure, path="/",
                            max_age=int((session.expires_at - self.ops.services.now()).total_seconds()))
        raise response

    def _end(self, session_id: str) -> None:
        with self.ops.pool.connection() as conn, conn.transaction():
            signin.end(conn, session_id)

    async def logout(self, request: web.Request) -> web.Response:
        await self.require_post(request)
        await asyncio.to_thread(self._end, request.cookies.get(COOKIE, ""))
        response = web.HTTPSeeOther("/")
        response.del_cookie(COOKIE, path="/")
        raise response

    # -- pages ----------------------------------------------------------------------------------------

    def _overview(self) -> views.overview.Overview:
        with self.ops.pool.connection() as conn:
            return views.overview.overview(conn, settings=self.ops.services.settings, now=self.ops.services.now())

    async def index(self, request: web.Request) -> web.Response:
        session = await self.require(request)
        view = await asyncio.to_thread(self._overview)
        return self.page("index.html.j2", view=view, session=session, notice=request.query.get("notice", ""),
                         zone=self.ops.services.settings.zone, retry_command=words.RETRY_DEAD_COMMAND)

    def _run(self, run_id: int) -> views.overview.RunPage | None:
        with self.ops.pool.connection() as conn:
            try:
                book = anchors.book(self.ops.services.settings)
                return views.overview.run_page(conn, run_id, anchors=book)
            except NotFound:
                return None

    async def run(self, request: web.Request) -> web.Response:
        session = await self.require(request)
        view = await asyncio.to_thread(self._run, int(request.match_info["run_id"]))
        if view is None:
            raise web.HTTPNotFound(text="no such run")
        return self.page("run.html.j2", view=view, session=session, notice=request.query.get("notice", ""),
                         zone=self.ops.services.settings.zone)

    # -- actions --------------------------------------------------------------------------------------

    async def change_run(self, request: web.Request) -> web.Response:
        session, _form = await self.require_post(request)
        run_id = int(request.match_info["run_id"])
        event = RunEvent(request.match_info["action"])
        said = await asyncio.to_thread(self.ops.change_run, self.requester(session), run_id, event)
        raise web.HTTPSeeOther(f"/runs/{run_id}?notice={quote(said.title)}")

    async def decide(self, request: web.Request) -> web.Response:
        session, form = await self.require_post(request)
        decision = Decision.APPROVED if request.match_info["decision"] == "approve" else Decision.REJECTED
        decided = await asyncio.to_thread(self.ops.decide, self.requester(session), request.match_info["approval_id"],
                                          decision)
        back = str(form.get("back", "/"))
        # Only a path on this site: "//host" and "/\\host" are both read by browsers as another host.
        local = back.startswith("/") and not back.startswith("//") and "\\" not in back
        raise web.HTTPSeeOther(f"{back if local else '/'}"
                               f"?notice={quote(decided.reply.title)}")

    async def metrics(self, request: web.Request) -> web.Response:
        token = self.ops.services.settings.metrics_token
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not (token and bearer and hmac.compare_digest(bearer, token)):
            await self.require(request)
        body = await asyncio.to_thread(generate_latest, self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def add_dashboard(app: web.Application, ops: Operations) -> None:
    """Add the dashboard's routes to `app`: `/`, `/runs/{id}`, `/login/{token}`, the POST actions and `/metrics`."""
    dashboard = Dashboard(ops)
    app.router.add_get("/", dashboard.index)
    app.router.add_get(r"/runs/{run_id:\d+}", dashboard.run)
    app.router.add_post(r"/runs/{run_id:\d+}/{action:pause|resume|cancel}", dashboard.change_run)
    app.router.add_post(r"/approvals/{approval_id:a[0-9a-f]{10}}/{decision:approve|reject}", dashboard.decide)
    app.router.add_get("/login/{token}", dashboard.login_form)
    app.router.add_post("/login/{token}", dashboard.login)
    app.router.add_post("/logout", dashboard.logout)
    app.router.add_get("/metrics", dashboard.metrics)
