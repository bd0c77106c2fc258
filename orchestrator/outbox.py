"""The outbox: every message to the operator is a row written with the state change that caused it.

Delivery happens after commit, by whichever consumer serves the channel (a job for Slack and
Telegram, the console itself for the console). A failed delivery is retried with backoff and
stays in the table until it is delivered: a message is never lost with a crashed process.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from orchestrator.messages import Message

NOTIFY_CHANNEL = "opsos_outbox"

INSERT = """
INSERT INTO outbox (channel, conversation, intent_id, run_id, approval_id, kind, message, dedupe_key)
VALUES (%(channel)s, %(conversation)s, %(intent_id)s, %(run_id)s, %(approval_id)s, %(kind)s, %(message)s,
        %(dedupe_key)s)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id
"""
# SKIP LOCKED: two delivery jobs running together each take different rows, never the same one.
CLAIM = """
SELECT * FROM outbox
WHERE state = 'pending' AND channel = %(channel)s AND next_attempt_at <= %(now)s
  AND (%(conversation)s::text IS NULL OR conversation = %(conversation)s)
ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
"""
# SKIP LOCKED: a row another deliverer holds is being claimed (it goes out, and at worst draws one more 429,
# which defers it) or is being deferred by that deliverer already. Waiting for it instead could deadlock two
# deliverers that hit the same channel's limit at once, each holding rows the other's hold wants.
HOLD_CHANNEL = """
UPDATE outbox SET next_attempt_at = %(until)s
WHERE id IN (SELECT id FROM outbox
             WHERE state = 'pending' AND channel = %(channel)s AND next_attempt_at < %(until)s
             FOR UPDATE SKIP LOCKED)
"""
# A platform's rate-limit wait, honoured from a second (never a hot loop on "retry after 0") up to a quarter
# of an hour: a garbled or extreme Retry-After must not park an approval request for a day, and asking again
# after the cap costs one call that brings a fresh Retry-After.
RATE_LIMIT_FLOOR = timedelta(seconds=1)
RATE_LIMIT_CEILING = timedelta(minutes=15)


class OutboxItem(BaseModel):
    id: int
    created_at: datetime
    channel: str
    conversation: str
    intent_id: int | None
    run_id: int | None
    approval_id: str | None
    kind: str
    message: Message
    state: str
    attempts: int
    delivery_ref: dict[str, Any] | None


def post(
    conn: Connection,
    *,
    channel: str,
    conversation: str,
    message: Message,
    intent_id: int | None = None,
    run_id: int | None = None,
    dedupe_key: str | None = None,
) -> int | None:
    """Queue a message inside the caller's transaction; listeners are woken at commit.

    With a `dedupe_key`, a step re-run after a crash does not tell the operator the same thing twice:
    returns None when that message was already queued.
    """
    row = conn.execute(
        INSERT,
        {"channel": channel, "conversation": conversation, "intent_id": intent_id, "run_id": run_id,
         "approval_id": message.approval_id, "kind": message.kind, "message": Jsonb(message.model_dump(mode="json")),
         "dedupe_key": dedupe_key},
    ).fetchone()
    if row is None:
        return None
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, channel))
    return row["id"]


def claim(
    conn: Connection, *, channel: str, now: datetime, conversation: str | None = None, limit: int = 50
) -> list[OutboxItem]:
    """Lock due messages of a channel for delivery; call inside a transaction and settle each before commit."""
    rows = conn.execute(
        CLAIM, {"channel": channel, "conversation": conversation, "now": now, "limit": limit}
    ).fetchall()
    return [OutboxItem.model_validate(r) for r in rows]


def mark_delivered(conn: Connection, item_id: int, *, ref: dict[str, Any] | None = None) -> None:
    conn.execute(
        "UPDATE outbox SET state = 'delivered', delivered_at = now(), attempts = attempts + 1, delivery_ref = %s"
        " WHERE id = %s",
        (Jsonb(ref) if ref is not None else None, item_id),
    )


def lease(conn: Connection, item_ids: list[int], *, until: datetime) -> None:
    """Hold claimed rows for one deliverer until `until`, so it can send outside the claiming transaction.

    Others skip the rows until then; if the deliverer dies mid-send, they come due again (at least once).
    """
    if item_ids:
        conn.execute("UPDATE outbox SET next_attempt_at = %s WHERE id = ANY(%s)", (until, item_ids))


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(600, 2 ** max(0, attempts)))


def mark_failed(conn: Connection, item_id: int, *, error: str, attempts: int, now: datetime) -> None:
    """Keep the message pending and try again later; the delay doubles with each failure, up to 10 minutes."""
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = %s, next_attempt_at = %s WHERE id = %s",
        (error[:500], now + retry_delay(attempts + 1), item_id),
    )


def rate_limit_delay(seconds: float) -> timedelta:
    """How long to wait when a platform asked for `seconds`: at least that, within the floor and the ceiling."""
    if not seconds > RATE_LIMIT_FLOOR.total_seconds():  # also a NaN read from a garbled header
        return RATE_LIMIT_FLOOR
    return timedelta(seconds=min(seconds, RATE_LIMIT_CEILING.total_seconds()))


def mark_deferred(conn: Connection, item_id: int, *, reason: str, until: datetime) -> None:
    """Keep the message pending until `until` without counting an attempt: the platform was busy, not failing.

    Attempts drive the backoff of real failures: a rate limit counted as one would lengthen the next real
    backoff and, were attempts ever capped, could drop a message only because the platform was busy.
    """
    conn.execute("UPDATE outbox SET last_error = %s, next_attempt_at = %s WHERE id = %s",
                 (reason[:500], until, item_id))


def hold_channel(conn: Connection, *, channel: str, until: datetime) -> None:
    """No pending message of `channel` comes due before `until`; later due times stay as they are."""
    conn.execute(HOLD_CHANNEL, {"channel": channel, "until": until})


def for_approval(conn: Connection, approval_id: str) -> list[OutboxItem]:
    rows = conn.execute(
        "SELECT * FROM outbox WHERE approval_id = %s AND kind = 'approval_request' ORDER BY id", (approval_id,)
    ).fetchall()
    return [OutboxItem.model_validate(r) for r in rows]

