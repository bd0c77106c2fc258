"""Clock skew: this machine's clock against PostgreSQL's `now()` and Redis's `TIME`. Stripe refuses a webhook signed
more than 300 s off, approvals and sign-in links expire by time, and the database stamps rows with its own clock."""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from redis import Redis
from redis.exceptions import RedisError

from orchestrator.doctor.verdict import Verdict, failed, ok, skipped, warning
from orchestrator.words import doctor as said

PART = "clock"
# Beyond this the machines disagree enough to show in timestamps; beyond REFUSED Stripe's signatures fail.
WARN_SECONDS = 5.0
REFUSED_SECONDS = 300.0


def check_clock(*, database_url: str | None, redis: Redis | None, clock: Callable[[], datetime],
                timeout: float = 5.0) -> Verdict:
    """Each reachable server's clock minus this machine's, taken at the middle of the round trip."""
    skews: dict[str, float] = {}
    # A server that cannot be reached is left out: its own verdict says why.
    if database_url is not None:
        with contextlib.suppress(psycopg.Error), psycopg.connect(database_url,
                                                                 connect_timeout=max(int(timeout), 1)) as conn:
            skews["PostgreSQL"] = _skew(lambda: _database_time(conn), clock)
    if redis is not None:
        with contextlib.suppress(RedisError, OSError):
            skews["Redis"] = _skew(lambda: _redis_time(redis), clock)
    if not skews:
        return skipped(PART, said.CLOCK_NEEDS_STORES)
    worst = max(abs(seconds) for seconds in skews.values())
    if worst > REFUSED_SECONDS:
        return failed(PART, said.clock_skewed(skews), said.CLOCK_FIX)
    if worst > WARN_SECONDS:
        return warning(PART, said.clock_skewed(skews), said.CLOCK_FIX)
    return ok(PART, said.clock_agrees(skews))


def _skew(read: Callable[[], datetime], clock: Callable[[], datetime]) -> float:
    before = clock()
    theirs = read()
    after = clock()
    return (theirs - (before + (after - before) / 2)).total_seconds()


def _database_time(conn: psycopg.Connection) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]


def _redis_time(redis: Redis) -> datetime:
    seconds, micros = redis.time()
    return datetime.fromtimestamp(seconds + micros / 1_000_000, UTC)
