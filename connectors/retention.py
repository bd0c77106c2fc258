"""Retention of idempotency records: finished outside actions past an age go, unless the caller keeps their keys.

The connectors own `connector_actions`, so they run its delete; which keys must stay is the caller's to say
(the orchestrator keeps every key of a run not yet finished, since a re-run step claims them again).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from psycopg import Connection

# Only an action whose outcome is known may go: done, compensated, or given back by an attempt that raised before
# acting (pending with no owner, see `idempotency.RELEASE`). A pending record whose worker died (its owner kept,
# the outcome unknown) is what makes a re-run ask the backend again instead of acting blind, and any state added
# later stays until listed here.
FINISHED_STATES: tuple[str, ...] = ("done", "compensated")

_PRUNABLE = """
FROM connector_actions a
WHERE (a.state = ANY(%(finished)s::text[]) OR (a.state = 'pending' AND a.owner IS NULL))
  AND a.updated_at < %(before)s
  AND NOT EXISTS (SELECT 1 FROM unnest(%(keep)s::text[]) AS k(prefix) WHERE starts_with(a.key, k.prefix))
"""
PRUNE_ACTIONS = "DELETE " + _PRUNABLE
COUNT_ACTIONS = "SELECT count(*) AS n " + _PRUNABLE


def prune_actions(conn: Connection, *, before: datetime, keep_prefixes: Sequence[str], dry_run: bool = False) -> int:
    """Delete (or, with `dry_run`, count) the finished action records last changed before `before`, except those
    whose key starts with one of `keep_prefixes`. Returns how many rows went (or would go)."""
    params = {"finished": list(FINISHED_STATES), "before": before, "keep": list(keep_prefixes)}
    if dry_run:
        row = conn.execute(COUNT_ACTIONS, params).fetchone()
        return int(row["n"] if isinstance(row, dict) else row[0])
    return conn.execute(PRUNE_ACTIONS, params).rowcount
