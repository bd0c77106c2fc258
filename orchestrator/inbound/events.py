"""The `stripe_events` table: each Stripe event once by its id, as received, then how it was handled."""
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


INSERT = """
INSERT INTO stripe_events (id, type, created, object_key, payload, received_at)
VALUES (%(id)s, %(type)s, %(created)s, %(object_key)s, %(payload)s, %(received_at)s)
ON CONFLICT (id) DO NOTHING
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
