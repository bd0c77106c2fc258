"""The `stripe_events` table: each Stripe event once by its id, as received, then how it was handled.

A signed event opsos cannot read is stored too (`unreadable`, its body as sent); an event whose handling keeps
failing is given up on after its attempts (`dead`) until the operator asks for it again (`retry_dead`).
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel


class EventState(StrEnum):
    RECEIVED = "received"
    HANDLED = "handled"
    # Signed by Stripe, but its body does not fit opsos's model of an event: kept as sent, never handled.
    UNREADABLE = "unreadable"
    # Its handling failed on every attempt: kept, no longer swept, until `opsos stripe retry-dead`.
    DEAD = "dead"


class StoredEvent(BaseModel):
    id: str
    type: str
    created: datetime
    object_key: str
    payload: dict[str, Any]
    received_at: datetime
    state: EventState
    outcome: str | None
    detail: str
    applied: bool
    intent_id: int | None
    handled_at: datetime | None
    attempts: int = 0
    last_error: str | None = None


INSERT = """
INSERT INTO stripe_events (id, type, created, object_key, payload, received_at)
VALUES (%(id)s, %(type)s, %(created)s, %(object_key)s, %(payload)s, %(received_at)s)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""
STORE_UNREADABLE = """
INSERT INTO stripe_events (id, type, created, object_key, payload, received_at, state, detail)
VALUES (%(id)s, %(type)s, %(received_at)s, '', %(payload)s, %(received_at)s, 'unreadable', %(detail)s)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""
# The concurrency rule: only a received event counts a failure, and the row lock makes the count and the move to
# dead one step, so of two failing workers exactly one sees the move (and tells the operator).
FAILED = """
UPDATE stripe_events SET attempts = attempts + 1, last_error = %(error)s,
    state = CASE WHEN attempts + 1 >= %(max_attempts)s THEN 'dead' ELSE state END
WHERE id = %(id)s AND state = 'received'
RETURNING state, attempts
"""
RETRY_DEAD = """
UPDATE stripe_events SET state = 'received', attempts = 0
WHERE state = 'dead' AND (%(ids)s::text[] IS NULL OR id = ANY(%(ids)s::text[]))
RETURNING id
"""
GET = "SELECT * FROM stripe_events WHERE id = %s"
GET_FOR_UPDATE = GET + " FOR UPDATE"
NEWEST_APPLIED = """
SELECT max(created) AS newest FROM stripe_events WHERE object_key = %(object_key)s AND applied AND id <> %(id)s
"""
FULFILLED = """
SELECT 1 FROM stripe_events WHERE object_key = %(object_key)s AND applied AND outcome = 'fulfilment' LIMIT 1
"""
FINISH = """
UPDATE stripe_events SET state = 'handled', outcome = %(outcome)s, detail = %(detail)s, applied = %(applied)s,
    intent_id = %(intent_id)s, handled_at = %(now)s
WHERE id = %(id)s
"""
WAITING = """
SELECT id FROM stripe_events WHERE state = 'received' AND received_at < %(before)s ORDER BY received_at LIMIT %(limit)s
"""


def store(conn: Connection, *, id: str, type: str, created: datetime, object_key: str, payload: dict[str, Any],
          received_at: datetime) -> bool:
    """Record an event as received in the caller's transaction; False if its id was stored before (a redelivery)."""
    row = conn.execute(INSERT, {"id": id, "type": type, "created": created, "object_key": object_key,
                                "payload": Jsonb(payload), "received_at": received_at}).fetchone()
    return row is not None


def get(conn: Connection, event_id: str, *, for_update: bool = False) -> StoredEvent | None:
    row = conn.execute(GET_FOR_UPDATE if for_update else GET, (event_id,)).fetchone()
    return StoredEvent.model_validate(row) if row else None


def newest_applied(conn: Connection, *, object_key: str, besides: str) -> datetime | None:
    """When the latest event applied to `object_key` (other than `besides`) was created at Stripe; None if none was."""
    return conn.execute(NEWEST_APPLIED, {"object_key": object_key, "id": besides}).fetchone()["newest"]


def fulfilled(conn: Connection, *, object_key: str) -> bool:
    return conn.execute(FULFILLED, {"object_key": object_key}).fetchone() is not None


def finish(conn: Connection, event_id: str, *, outcome: str, detail: str, applied: bool, intent_id: int | None,
           now: datetime) -> None:
    conn.execute(FINISH, {"id": event_id, "outcome": outcome, "detail": detail, "applied": applied,
                          "intent_id": intent_id, "now": now})


def waiting(conn: Connection, *, before: datetime, limit: int = 500) -> list[str]:
    """Events received before `before` and not yet handled (their job lost with Redis, or never enqueued)."""
    return [row["id"] for row in conn.execute(WAITING, {"before": before, "limit": limit}).fetchall()]


def store_unreadable(conn: Connection, *, id: str, payload: dict[str, Any], kind: str, why: str,
                     received_at: datetime) -> bool:
    """Record a signed event opsos cannot read, as sent, in the caller's transaction; False if its id was stored."""
    row = conn.execute(STORE_UNREADABLE, {"id": id, "type": kind, "payload": Jsonb(payload), "detail": why,
                                          "received_at": received_at}).fetchone()
    return row is not None


def failed(conn: Connection, event_id: str, *, error: str, max_attempts: int) -> tuple[EventState, int] | None:
    """Count a failed handling of a received event; its state after (dead at `max_attempts`) and attempts so far,
    or None when it is no longer waiting (handled, or given up on, by another worker)."""
    row = conn.execute(FAILED, {"id": event_id, "error": error[:1000], "max_attempts": max_attempts}).fetchone()
    return (EventState(row["state"]), row["attempts"]) if row else None


def retry_dead(conn: Connection, *, ids: list[str] | None = None) -> list[str]:
    """Dead events (or those of `ids` that are dead) back to received with a fresh allowance of attempts."""
    return [row["id"] for row in conn.execute(RETRY_DEAD, {"ids": ids}).fetchall()]
