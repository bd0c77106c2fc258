"""The outbox: every message to the operator is a row written with the state change that caused it.

Delivery happens after commit, by whichever consumer serves the channel (a job for Slack and
Telegram, the console itself for the console). A failed delivery is retried with backoff and
stays in the table until it is delivered: a message is never lost with a crashed process.

A row that carries approval buttons is a *copy* of those approvals (an approval request, a digest);
when an approval leaves pending, each copy gets an *edit*: a row of kind `edit` naming the copy it
changes (`edit_of`) and carrying how the approval ended (`ending`), delivered like any row once its copy
is out; delivery words it from the approval's record when it goes.

A row is `pending` until it is `delivered` (or, for an edit with nothing left to change, `dropped`); one that
failed too often is `dead`: kept, never tried again until the operator requeues it. A deliverer owns the rows
it leased by the pass's `lease_token`: every change it makes to a row after the lease names that token, so a
deliverer whose lease ran out (another took the row since) changes nothing.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from orchestrator import buttons
from orchestrator.errors import NotFound
from orchestrator.messages import Message, MessageKind

NOTIFY_CHANNEL = "opsos_outbox"


INSERT = """
INSERT INTO outbox (channel, conversation, intent_id, run_id, approval_id, kind, message, dedupe_key,
                    approval_buttons)
VALUES (%(channel)s, %(conversation)s, %(intent_id)s, %(run_id)s, %(approval_id)s, %(kind)s, %(message)s,
        %(dedupe_key)s, %(approval_buttons)s)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id
"""
# SKIP LOCKED: two delivery jobs running together each take different rows, never the same one.
# An edit is due only once its copy is delivered (it needs the platform's reference to the message) and once
# the copy's earlier edits are settled: edits of one copy go out one at a time, in the order of the decisions,
# so the last to land is the last composed and a copy never goes back to an older state.
CLAIM = """
SELECT o.* FROM outbox o
WHERE o.state = 'pending' AND o.channel = %(channel)s AND o.next_attempt_at <= %(now)s
  AND (%(conversation)s::text IS NULL OR o.conversation = %(conversation)s)
  AND (%(approval_id)s::text IS NULL OR (o.kind = 'edit' AND o.approval_id = %(approval_id)s))
  AND (o.edit_of IS NULL OR (
        EXISTS (SELECT 1 FROM outbox t WHERE t.id = o.edit_of AND t.state = 'delivered')
        AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.edit_of = o.edit_of AND e.id < o.id AND e.state = 'pending')))
ORDER BY o.id LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED
"""
# One edit per copy and approval (the dedupe key): an approval leaves pending once, and a second path that
# records the same end (a click on an approval the sweep already showed expired) finds its edits queued.
# A copy still pending gets its edit too, which waits for it: the copy may be on its way out right now.
EDIT_COPIES = """
INSERT INTO outbox (channel, conversation, intent_id, run_id, approval_id, kind, message, dedupe_key, edit_of,
                    ending)
SELECT channel, conversation, intent_id, run_id, %(approval_id)s, 'edit', %(message)s,
       'edit:' || id || ':' || %(approval_id)s, id, %(ending)s
FROM outbox
WHERE approval_buttons <> '{}' AND approval_buttons @> ARRAY[%(approval_id)s]::text[] AND edit_of IS NULL
ORDER BY id
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id, channel
"""
COPIES = """
SELECT * FROM outbox
WHERE approval_buttons <> '{}' AND approval_buttons @> ARRAY[%s]::text[] AND edit_of IS NULL ORDER BY id
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


class Ending(BaseModel):
    """How an approval ended, as an edit row keeps it: its state then, and the run's end if that withdrew it.

    A copy keeps telling this end even if the record later reads otherwise (void, when the run asked anew).
    """

    state: str
    run_outcome: str | None = None


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
    # The copy this row edits (rows of kind `edit` only), and the approvals whose buttons this row carries.
    edit_of: int | None = None
    approval_buttons: list[str] = Field(default_factory=list)
    ending: Ending | None = None
    # What a sender already got out of a message it sends in several calls (Telegram's parts), saved after each
    # one: a retry sends only the rest. None until a first part went out.
    progress: dict[str, Any] | None = None
    last_error: str | None = None
    dedupe_key: str | None = None


def approvals_in(message: Message) -> list[str]:
    """The approvals whose buttons `message` carries, in the order its buttons show them."""
    found = [buttons.approval_of(action.value) for action in message.actions]
    return list(dict.fromkeys(approval for approval in found if approval))


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
         "dedupe_key": dedupe_key, "approval_buttons": approvals_in(message)},
    ).fetchone()
    if row is None:
        return None
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, channel))
    return row["id"]


# What opsos said in a conversation before a request; an edit row only marks how an approval ended.
EARLIER_IN = """
SELECT * FROM outbox
WHERE channel = %(channel)s AND conversation = %(conversation)s AND created_at < %(before)s AND kind <> 'edit'
ORDER BY id DESC LIMIT %(limit)s
"""


def earlier_in(conn: Connection, *, channel: str, conversation: str, before: datetime,
               limit: int) -> list[OutboxItem]:
    """The conversation's messages queued before `before` (an intent's `created_at`), newest first."""
    rows = conn.execute(EARLIER_IN, {"channel": channel, "conversation": conversation, "before": before,
                                     "limit": limit}).fetchall()
    return [OutboxItem.model_validate(row) for row in rows]


def claim(
    conn: Connection, *, channel: str, now: datetime, conversation: str | None = None, limit: int = 50,
    approval_id: str | None = None,
) -> list[OutboxItem]:
    """Lock due messages of a channel for delivery; call inside a transaction and settle each before commit.

    With `approval_id`, only the due edits that approval's end caused (a click delivers its own at once).
    """
    rows = conn.execute(
        CLAIM, {"channel": channel, "conversation": conversation, "now": now, "limit": limit,
                "approval_id": approval_id},
    ).fetchall()
    return [OutboxItem.model_validate(r) for r in rows]


def get(conn: Connection, item_id: int) -> OutboxItem:
    row = conn.execute("SELECT * FROM outbox WHERE id = %s", (item_id,)).fetchone()
    if row is None:
        raise NotFound("outbox row", item_id)
    return OutboxItem.model_validate(row)


# Every change a deliverer makes to a row it leased names the pass's token: the row must still be pending and
# still carry that token, or another deliverer leased it after this one's lease ran out, and it is theirs.
# `token` NULL is the console, which sends and settles inside the transaction that claimed (and row-locks) it.
OURS = "state = 'pending' AND (%(token)s::uuid IS NULL OR lease_token = %(token)s::uuid)"
DELIVERED = f"""
UPDATE outbox SET state = 'delivered', delivered_at = now(), attempts = attempts + 1, delivery_ref = %(ref)s
WHERE id = %(id)s AND {OURS} RETURNING id
"""
LEASE = "UPDATE outbox SET next_attempt_at = %(until)s, lease_token = %(token)s::uuid WHERE id = ANY(%(ids)s)"
HOLD = f"UPDATE outbox SET next_attempt_at = %(until)s WHERE id = ANY(%(ids)s) AND {OURS}"
# The row is locked by another deliverer's claim while that one leases it: this waits for its commit, then reads
# its token and matches nothing, so a row is sent by one deliverer at a time. A channel's rate-limit hold
# (a later next_attempt_at) is kept: the row goes now, but should this deliverer die, it waits as asked.
CONFIRM = f"""
UPDATE outbox SET next_attempt_at = greatest(next_attempt_at, %(until)s)
WHERE id = %(id)s AND {OURS} RETURNING *
"""
PROGRESS = f"""
UPDATE outbox SET progress = %(progress)s, next_attempt_at = greatest(next_attempt_at, %(until)s)
WHERE id = %(id)s AND {OURS} RETURNING id
"""
DROPPED = f"""
UPDATE outbox SET state = 'dropped', attempts = attempts + 1, last_error = %(error)s
WHERE id = %(id)s AND {OURS} RETURNING id
"""
FAILED = f"""
UPDATE outbox SET attempts = attempts + 1, last_error = %(error)s, next_attempt_at = %(until)s
WHERE id = %(id)s AND {OURS} RETURNING id
"""
DEFERRED = f"""
UPDATE outbox SET last_error = %(error)s, next_attempt_at = %(until)s WHERE id = %(id)s AND {OURS} RETURNING id
"""
DEAD = f"""
UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = %(error)s, dead_at = %(now)s
WHERE id = %(id)s AND {OURS} RETURNING *
"""
# Back to a fresh start: the attempts that made it dead are what the operator just overrode. The parts a sender
# already got out stay in `progress`, so a message that died half sent is finished, not sent again from the top.
REQUEUE_DEAD = """
UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = %(now)s, dead_at = NULL, lease_token = NULL
WHERE state = 'dead' AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s)) RETURNING *
"""


def mark_delivered(conn: Connection, item_id: int, *, ref: dict[str, Any] | None = None,
                   token: str | None) -> bool:
    """Settle a row as delivered with the platform's reference; False (nothing changed) if it is not ours."""
    row = conn.execute(DELIVERED, {"ref": Jsonb(ref) if ref is not None else None, "id": item_id,
                                   "token": token}).fetchone()
    return row is not None


def lease(conn: Connection, item_ids: list[int], *, until: datetime, token: str) -> None:
    """Hold claimed rows for one deliverer's pass (`token`) until `until`, so it can send outside the claiming
    transaction; call in that transaction. Others skip the rows until then; if the deliverer dies mid-send, they
    come due again (at least once)."""
    if item_ids:
        conn.execute(LEASE, {"until": until, "token": token, "ids": item_ids})


def hold(conn: Connection, item_ids: list[int], *, until: datetime, token: str) -> None:
    """Keep the rows of `item_ids` this pass still owns from coming due before `until` (others' rows untouched)."""
    if item_ids:
        conn.execute(HOLD, {"until": until, "token": token, "ids": item_ids})


def confirm(conn: Connection, item_id: int, *, token: str, until: datetime) -> OutboxItem | None:
    """Re-take a leased row just before sending it: its lease extended to `until` and the row as it is now
    (with any progress an earlier attempt saved), or None when the lease was lost (someone else has the row)."""
    row = conn.execute(CONFIRM, {"id": item_id, "token": token, "until": until}).fetchone()
    return OutboxItem.model_validate(row) if row is not None else None


def save_progress(conn: Connection, item_id: int, *, token: str, progress: dict[str, Any], until: datetime) -> bool:
    """Record what a sender got out so far, extending the lease to `until`; False when the lease was lost."""
    row = conn.execute(PROGRESS, {"id": item_id, "token": token, "progress": Jsonb(progress),
                                  "until": until}).fetchone()
    return row is not None


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(600, 2 ** max(0, attempts)))


def mark_dropped(conn: Connection, item_id: int, *, reason: str, token: str) -> bool:
    """Give up on an edit whose message is gone from its platform: there is nothing left to change, ever."""
    return conn.execute(DROPPED, {"error": reason[:500], "id": item_id, "token": token}).fetchone() is not None


def mark_failed(conn: Connection, item_id: int, *, error: str, attempts: int, now: datetime, token: str) -> bool:
    """Keep the message pending and try again later; the delay doubles with each failure, up to 10 minutes."""
    return conn.execute(FAILED, {"error": error[:500], "until": now + retry_delay(attempts + 1), "id": item_id,
                                 "token": token}).fetchone() is not None


def mark_dead(conn: Connection, item_id: int, *, error: str, now: datetime, token: str) -> OutboxItem | None:
    """Stop trying a message that failed too often: `dead`, with its last error; None if the row is not ours."""
    row = conn.execute(DEAD, {"error": error[:500], "now": now, "id": item_id, "token": token}).fetchone()
    return OutboxItem.model_validate(row) if row is not None else None


def requeue_dead(conn: Connection, *, now: datetime, ids: list[int] | None = None) -> list[OutboxItem]:
    """Make dead rows (all, or those of `ids`) pending again from now, with a fresh count of attempts."""
    rows = conn.execute(REQUEUE_DEAD, {"now": now, "ids": ids}).fetchall()
    for channel in sorted({row["channel"] for row in rows}):
        conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, channel))
    return [OutboxItem.model_validate(row) for row in rows]


def rate_limit_delay(seconds: float) -> timedelta:
    """How long to wait when a platform asked for `seconds`: at least that, within the floor and the ceiling."""
    if not seconds > RATE_LIMIT_FLOOR.total_seconds():  # also a NaN read from a garbled header
        return RATE_LIMIT_FLOOR
    return timedelta(seconds=min(seconds, RATE_LIMIT_CEILING.total_seconds()))


def mark_deferred(conn: Connection, item_id: int, *, reason: str, until: datetime, token: str) -> bool:
    """Keep the message pending until `until` without counting an attempt: the platform was busy, not failing.

    Attempts drive the backoff of real failures: a rate limit counted as one would lengthen the next real
    backoff and, were attempts ever capped, could drop a message only because the platform was busy.
    """
    return conn.execute(DEFERRED, {"error": reason[:500], "until": until, "id": item_id,
                                   "token": token}).fetchone() is not None


def hold_channel(conn: Connection, *, channel: str, until: datetime) -> None:
    """No pending message of `channel` comes due before `until`; later due times stay as they are."""
    conn.execute(HOLD_CHANNEL, {"channel": channel, "until": until})


def copies(conn: Connection, approval_id: str) -> list[OutboxItem]:
    """Every row carrying this approval's buttons (its requests, digests), delivered or not, oldest first."""
    return [OutboxItem.model_validate(r) for r in conn.execute(COPIES, (approval_id,)).fetchall()]


def edits(conn: Connection, copy_id: int) -> list[OutboxItem]:
    """The edits queued for one copy, in the order their approvals left pending."""
    rows = conn.execute("SELECT * FROM outbox WHERE edit_of = %s ORDER BY id", (copy_id,)).fetchall()
    return [OutboxItem.model_validate(r) for r in rows]


def edit_copies(conn: Connection, *, approval_id: str, ending: Ending) -> list[int]:
    """Queue, in the caller's transaction, an edit of every copy of this approval's buttons; returns the new rows.

    Queued once per copy: a copy that already has its edit for this approval gets none, so it is never told
    two different ends. The row's message only names the approval; its words are composed when it goes out.
    """
    marker = Message(kind=MessageKind.APPROVAL_DECIDED, title=f"approval {approval_id} {ending.state}",
                     approval_id=approval_id)
    rows = conn.execute(
        EDIT_COPIES, {"approval_id": approval_id, "message": Jsonb(marker.model_dump(mode="json")),
                      "ending": Jsonb(ending.model_dump(mode="json"))}
    ).fetchall()
    for channel in sorted({row["channel"] for row in rows}):
        conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, channel))
    return [row["id"] for row in rows]

