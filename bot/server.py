"""The web process: one aiohttp application for /slack/events, /telegram/webhook, /stripe/webhook and /healthz, plus
outbox delivery.

`/` and `/metrics` are left free for the dashboard, which is mounted through `extensions`.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from bot import senders
from bot.errors import ConfigurationError
from orchestrator import DeliveryLoop, Operations, Settings

log = structlog.get_logger(__name__)

RouteAdder = Callable[[web.Application], None]


@dataclass
class FrontEnds:
    """The chat platforms this server speaks to; either may be absent."""

    slack: Any = None  # slack_bolt.async_app.AsyncApp
    telegram: Any = None  # telegram.ext.Application


def front_ends(ops: Operations, settings: Settings) -> FrontEnds:
    """Build the Slack and Telegram apps whose tokens are set, after checking their other settings."""
    built = FrontEnds()
    if settings.slack_bot_token:
        if settings.slack_mode == "http" and not settings.slack_signing_secret:
            raise ConfigurationError("OPSOS_SLACK_SIGNING_SECRET is required in HTTP mode")
        if settings.slack_mode == "socket" and not settings.slack_app_token:
            raise ConfigurationError("OPSOS_SLACK_APP_TOKEN (xapp-…) is required in socket mode")
        from bot.slack import build_app

        built.slack = build_app(ops, settings)
    if settings.telegram_bot_token:
        if settings.telegram_mode == "webhook" and not settings.telegram_webhook_secret:
            raise ConfigurationError("OPSOS_TELEGRAM_WEBHOOK_SECRET is required in webhook mode")
        from bot.telegram import build_application

        built.telegram = build_application(ops, settings, polling=settings.telegram_mode == "polling")
    return built


async def _healthz(request: web.Request) -> web.Response:
    ops: Operations = request.app[OPS]

    def check() -> None:
        with ops.pool.connection(timeout=2.0):
            pass
        ops.services.stores.redis.ping()

    try:
        await asyncio.wait_for(asyncio.to_thread(check), 3.0)
    except Exception as error:  # any failure of a store means this process cannot serve
        # Anyone may call /healthz: it names the store that failed, never the error's text (hosts, users,
        # paths); that goes to the log, for the operator.
        failing = "redis" if isinstance(error, RedisError) else "postgresql"
        log.warning("healthz.failing", store=failing, error=f"{type(error).__name__}: {error}")
        return web.json_response({"ok": False, "failing": failing}, status=503)
    return web.json_response({"ok": True})


OPS = web.AppKey("ops", Operations)


def build_web_app(
    ops: Operations,
    settings: Settings,
    apps: FrontEnds | None = None,
    *,
    deliver: bool = True,
    extensions: Sequence[RouteAdder] = (),
) -> web.Application:
    """The aiohttp app. With `deliver`, it also runs the outbox delivery loop for its platforms."""
    apps = apps or FrontEnds()
    app = web.Application()
    app[OPS] = ops
    app.router.add_get("/healthz", _healthz)
    if apps.slack is not None and settings.slack_mode == "http":
        from bot.slack import events_endpoint

        app.router.add_post("/slack/events", events_endpoint(apps.slack, settings.slack_signing_secret or ""))
    if apps.telegram is not None and settings.telegram_mode == "webhook":
        from bot.telegram import webhook_endpoint

        secret = settings.telegram_webhook_secret or ""
        app.router.add_post("/telegram/webhook", webhook_endpoint(apps.telegram, secret))
    if settings.stripe_webhook_secret:
        from bot.stripe_webhook import webhook_endpoint as stripe_endpoint

        app.router.add_post("/stripe/webhook", stripe_endpoint(
            ops, settings.stripe_webhook_secret, tolerance=settings.stripe_webhook_tolerance_seconds))
    app.cleanup_ctx.append(_lifecycle(ops, settings, apps, deliver=deliver))
    for extend in extensions:
        extend(app)
    return app


def _lifecycle(ops: Operations, settings: Settings, apps: FrontEnds, *, deliver: bool) -> Any:
    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        socket_handler = None
        # Socket Mode first: a refused app token raises here, before anything else needs stopping.
        if apps.slack is not None and settings.slack_mode == "socket":
            from bot.slack import start_socket_mode

            socket_handler = await start_socket_mode(apps.slack, settings.slack_app_token or "")
        telegram = apps.telegram
        if telegram is not None:
            await telegram.initialize()
            if settings.telegram_mode == "polling":
                # A laptop with no public URL: drop any webhook, then long-poll getUpdates.
                await telegram.bot.delete_webhook()
                await telegram.updater.start_polling()
            elif settings.telegram_webhook_url:
                await telegram.bot.set_webhook(settings.telegram_webhook_url,
                                               secret_token=settings.telegram_webhook_secret,
                                               allowed_updates=["message", "callback_query"])
            await telegram.start()
        stop = asyncio.Event()
        task = None
        if deliver:
            channels = senders.register_all(senders.for_clients(
                slack=apps.slack.client if apps.slack is not None else None,
                telegram=apps.telegram.bot if apps.telegram is not None else None))
            loop = DeliveryLoop(ops.pool, ops.services.stores.database_url, clock=ops.services.now,
                                poll_seconds=settings.delivery_poll_seconds,
                                max_attempts=settings.outbox_max_attempts, home=settings.home_channel)
            task = asyncio.create_task(loop.run(stop), name="outbox-delivery")
            log.info("serve.delivery_started", channels=channels)
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if socket_handler is not None:
                await socket_handler.close_async()
            if telegram is not None:
                if telegram.updater is not None and telegram.updater.running:
                    await telegram.updater.stop()
                if telegram.running:
                    await telegram.stop()
                await telegram.shutdown()

    return lifecycle


__all__ = ["OPS", "ConfigurationError", "FrontEnds", "RouteAdder", "build_web_app", "front_ends"]
