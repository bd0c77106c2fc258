"""What `/metrics` reports, read from PostgreSQL and Redis at scrape time, so every process reports the same."""
from __future__ import annotations

from pydantic import BaseModel
from redis import Redis
from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry

from orchestrator.queue import QUEUE_NAMES, queue

# Seconds; a run of the win-back workflow takes seconds without approvals and hours with them.
DURATION_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 4 * 3600.0, 24 * 3600.0)

INTENTS = "SELECT kind, count(*) AS n FROM intents GROUP BY kind"
RUNS = "SELECT workflow, state, count(*) AS n FROM runs GROUP BY workflow, state"
DURATIONS = """
WITH d AS (SELECT workflow, extract(epoch FROM finished_at - created_at)::float8 AS s FROM runs
           WHERE finished_at IS NOT NULL)
SELECT d.workflow, b.le, count(*) FILTER (WHERE d.s <= b.le) AS n
FROM d CROSS JOIN unnest(%(bounds)s::float8[]) AS b(le) GROUP BY d.workflow, b.le ORDER BY d.workflow, b.le
"""
DURATION_TOTALS = """
SELECT workflow, count(*) AS n, coalesce(sum(extract(epoch FROM finished_at - created_at)), 0)::float8 AS total
FROM runs WHERE finished_at IS NOT NULL GROUP BY workflow
"""
PENDING_APPROVALS = "SELECT count(*) AS n FROM approvals WHERE state = 'pending'"
SPEND = """
SELECT tier, coalesce(sum(cost_usd), 0)::float8 AS usd, coalesce(sum(input_tokens + output_tokens), 0) AS tokens
FROM agent_calls GROUP BY tier
"""
# A connector error: a failed payment, or an outside action attempted again because the outcome of an earlier
# attempt was unknown (its worker died or the system timed out). A failed payment is counted from what opsos stored,
# never by asking Stripe at scrape time: each charge of opsos's declined (journalled by the claim's release in the
# decline's own transaction, on the sandbox and on Stripe alike, so one count serves both backends), and each
# `invoice.payment_failed` event Stripe sent (its own collection of a subscription, which opsos did not attempt;
# stored once by event id). Both tables are append-only, so the count only grows, as a counter should; both
# filters match a partial index (orchestrator migration 15), so a scrape reads two small indexes.
CONNECTOR_ERRORS = """
SELECT 'payments' AS connector, count(*) AS n FROM audit_events
WHERE kind = 'connector.action_failed' AND payload->>'connector' = 'payments' AND payload->>'action' = 'charge'
      AND payload->>'error' LIKE 'ActionDeclined:%'
UNION ALL
SELECT 'payments', count(*) FROM stripe_events WHERE type = 'invoice.payment_failed'
UNION ALL
SELECT connector, sum(attempts - 1) AS n FROM connector_actions WHERE attempts > 1 GROUP BY connector
"""
DELIVERY = """
SELECT channel, coalesce(sum(greatest(attempts - 1, 0)) FILTER (WHERE state IN ('delivered', 'dead')), 0)
           + coalesce(sum(attempts) FILTER (WHERE state = 'pending'), 0) AS retries,
       count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'dead') AS dead
FROM outbox GROUP BY channel
"""


class Histogram(BaseModel):
    buckets: list[tuple[float, int]]
    count: int
    total: float


class Snapshot(BaseModel):
    intents: dict[str, int]
    runs: dict[tuple[str, str], int]
    durations: dict[str, Histogram]
    queues: dict[str, int]
    failed_jobs: dict[str, int]
    redis_up: bool
    pending_approvals: int
    spend_usd: dict[str, float]
    tokens: dict[str, int]
    connector_errors: dict[str, int]
    delivery_retries: dict[str, int]
    outbox_pending: dict[str, int]
    # Messages given up on after too many failures, waiting for `opsos outbox retry-dead`.
    outbox_dead: dict[str, int]


def snapshot(conn, redis: Redis) -> Snapshot:
    """One consistent read of the counters; Redis being down shows as redis_up=0, not as a failed scrape."""
    durations: dict[str, Histogram] = {}
    for row in conn.execute(DURATION_TOTALS):
        durations[row["workflow"]] = Histogram(buckets=[], count=row["n"], total=row["total"])
    for row in conn.execute(DURATIONS, {"bounds": list(DURATION_BUCKETS)}):
        durations[row["workflow"]].buckets.append((row["le"], row["n"]))
    queues: dict[str, int] = {}
    failed: dict[str, int] = {}
    redis_up = True
    try:
        for name in QUEUE_NAMES:
            queues[name] = queue(redis, name).count
            failed[name] = FailedJobRegistry(name, connection=redis).count
    except RedisError:
        redis_up = False
    errors: dict[str, int] = {}
    for row in conn.execute(CONNECTOR_ERRORS):
        errors[row["connector"]] = errors.get(row["connector"], 0) + int(row["n"] or 0)
    spend = list(conn.execute(SPEND))
    delivery = list(conn.execute(DELIVERY))
    return Snapshot(
        intents={r["kind"]: r["n"] for r in conn.execute(INTENTS)},
        runs={(r["workflow"], r["state"]): r["n"] for r in conn.execute(RUNS)},
        durations=durations, queues=queues, failed_jobs=failed, redis_up=redis_up,
        pending_approvals=conn.execute(PENDING_APPROVALS).fetchone()["n"],
        spend_usd={r["tier"]: r["usd"] for r in spend}, tokens={r["tier"]: int(r["tokens"]) for r in spend},
        connector_errors=errors,
        delivery_retries={r["channel"]: int(r["retries"]) for r in delivery},
        outbox_pending={r["channel"]: int(r["pending"]) for r in delivery},
        outbox_dead={r["channel"]: int(r["dead"]) for r in delivery},
    )
