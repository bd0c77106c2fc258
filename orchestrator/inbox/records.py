"""The mailbox's records: one cursor per folder, and each message read, once per (folder, uidvalidity, uid).

Every function runs in the caller's transaction and returns what it changed or found; what the operator is told
is decided by the poller above (`inbox.poll`).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from connectors import AttachmentNote, message_id_for
from orchestrator.keys import run_step_of


class Status(StrEnum):
    """What became of a message. Only REMEMBERED and REPLY reach memory; the rest are counted and kept."""

    REMEMBERED = "remembered"
    REPLY = "reply"
    UNKNOWN_SENDER = "unknown_sender"
    # The same Message-ID read before in this folder (copied twice, or renumbered under a new UIDVALIDITY).
    DUPLICATE = "duplicate"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNDECODABLE = "undecodable"
    # Reading it raised something unforeseen; kept with the error so the mailbox is not stuck behind it.
    FAILED = "failed"


class Cursor(BaseModel):
    folder: str
    uidvalidity: int
    last_uid: int
    polled_at: datetime


class Inbound(BaseModel):
    """A message as recorded: who, what, and what it became."""

    id: int
    folder: str
    uidvalidity: int
    uid: int
    status: Status
    size: int
    message_id: str | None
    sender: str
    sender_name: str
    subject: str
    sent_at: datetime | None
    received_at: datetime
    contact_id: str | None
    memory_id: int | None
    action_key: str | None
    run_id: int | None
    preview: str
    attachments: list[AttachmentNote]
    detail: str


class RepliedTo(BaseModel):
    """The email opsos sent that a message answers: its connector key, the run and step that sent it, to whom."""

    key: str
    run_id: int | None
    step: str | None
    to: str
    subject: str


# FOR UPDATE: the cursor row is the lock of its folder. Two pollers racing on one message serialise here; the
# second finds `last_uid` moved past the message and leaves it, so no message is taken twice.
LOCK_CURSOR = "SELECT * FROM mailbox_cursors WHERE folder = %s FOR UPDATE"
START_CURSOR = """
INSERT INTO mailbox_cursors (folder, uidvalidity, last_uid, polled_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (folder) DO NOTHING
"""
MOVE_CURSOR = "UPDATE mailbox_cursors SET uidvalidity = %s, last_uid = %s, polled_at = %s WHERE folder = %s"
ADVANCE = "UPDATE mailbox_cursors SET last_uid = greatest(last_uid, %s) WHERE folder = %s AND uidvalidity = %s"
TOUCH = "UPDATE mailbox_cursors SET polled_at = %s WHERE folder = %s"
INSERT = """
INSERT INTO inbound_emails (folder, uidvalidity, uid, status, size, message_id, sender, sender_name, subject, sent_at,
                            received_at, contact_id, action_key, run_id, preview, attachments, detail)
VALUES (%(folder)s, %(uidvalidity)s, %(uid)s, %(status)s, %(size)s, %(message_id)s, %(sender)s, %(sender_name)s,
        %(subject)s, %(sent_at)s, %(received_at)s, %(contact_id)s, %(action_key)s, %(run_id)s, %(preview)s,
        %(attachments)s, %(detail)s)
ON CONFLICT (folder, uidvalidity, uid) DO NOTHING
RETURNING id
"""
SET_MEMORY = "UPDATE inbound_emails SET memory_id = %s WHERE id = %s"
SEEN_MESSAGE_ID = "SELECT id FROM inbound_emails WHERE folder = %s AND message_id = %s LIMIT 1"
# Emails opsos sent that may be the one answered: by the Message-ID it recorded on sending, or (an attempt whose
# outcome was lost before it was recorded) by the address it went to; `message_id_for` then decides.
SENT_EMAILS = """
SELECT key, request FROM connector_actions
WHERE connector = 'email' AND (result->>'message_id' = ANY(%(ids)s) OR lower(request->>'to') = %(sender)s)
ORDER BY created_at DESC
LIMIT 500
"""
FOR_RUN = "SELECT * FROM inbound_emails WHERE run_id = %s ORDER BY id"
GET = "SELECT * FROM inbound_emails WHERE id = %s"
COUNTS = "SELECT status, count(*) AS n FROM inbound_emails GROUP BY status"
# The newest reply from someone matching a term: their address, their name as they wrote it, or the CRM's.
LATEST_REPLY = """
SELECT e.* FROM inbound_emails e LEFT JOIN crm_contacts c ON c.id = e.contact_id
WHERE e.status = 'reply' AND (e.sender ILIKE %(like)s OR e.sender_name ILIKE %(like)s OR c.name ILIKE %(like)s)
ORDER BY e.id DESC LIMIT 1
"""


def lock_cursor(conn: Connection, folder: str) -> Cursor | None:
    row = conn.execute(LOCK_CURSOR, (folder,)).fetchone()
    return Cursor.model_validate(row) if row else None


def start_cursor(conn: Connection, *, folder: str, uidvalidity: int, last_uid: int, now: datetime) -> None:
    conn.execute(START_CURSOR, (folder, uidvalidity, last_uid, now))


def move_cursor(conn: Connection, *, folder: str, uidvalidity: int, last_uid: int, now: datetime) -> None:
    conn.execute(MOVE_CURSOR, (uidvalidity, last_uid, now, folder))


def advance(conn: Connection, *, folder: str, uidvalidity: int, uid: int) -> None:
    conn.execute(ADVANCE, (uid, folder, uidvalidity))


def touch(conn: Connection, *, folder: str, now: datetime) -> None:
    conn.execute(TOUCH, (now, folder))


def record(conn: Connection, **fields: Any) -> int | None:
    """Insert one message's row; None when (folder, uidvalidity, uid) is recorded already."""
    values = {"message_id": None, "sender": "", "sender_name": "", "subject": "", "sent_at": None,
              "contact_id": None, "action_key": None, "run_id": None, "preview": "", "detail": "", **fields}
    values["attachments"] = Jsonb([a.model_dump() for a in values.get("attachments", [])])
    values["status"] = Status(values["status"]).value
    row = conn.execute(INSERT, values).fetchone()
    return row["id"] if row else None


def set_memory(conn: Connection, inbound_id: int, memory_id: int) -> None:
    conn.execute(SET_MEMORY, (memory_id, inbound_id))


def seen(conn: Connection, *, folder: str, message_id: str | None) -> bool:
    return message_id is not None and conn.execute(SEEN_MESSAGE_ID, (folder, message_id)).fetchone() is not None


def replied_to(conn: Connection, *, answers: list[str], sender: str) -> RepliedTo | None:
    """The email opsos sent that `answers` (In-Reply-To, then References) names; None for any other message.

    A Message-ID opsos sent is derived from the send's idempotency key (`message_id_for`), so a match is exact.
    """
    ours = [mid for mid in answers if mid.endswith("@opsos>")]
    if not ours:
        return None
    candidates = {message_id_for(row["key"]): row for row in conn.execute(
        SENT_EMAILS, {"ids": ours, "sender": sender.lower()}).fetchall()}
    for mid in ours:
        row = candidates.get(mid)
        if row is not None:
            run_step = run_step_of(row["key"])
            return RepliedTo(key=row["key"], run_id=run_step[0] if run_step else None,
                             step=run_step[1] if run_step else None, to=str(row["request"].get("to", "")),
                             subject=str(row["request"].get("subject", "")))
    return None


def for_run(conn: Connection, run_id: int) -> list[Inbound]:
    """The replies to a run's emails, oldest first (the run's page shows them)."""
    return [Inbound.model_validate(r) for r in conn.execute(FOR_RUN, (run_id,)).fetchall()]


def get(conn: Connection, inbound_id: int) -> Inbound | None:
    row = conn.execute(GET, (inbound_id,)).fetchone()
    return Inbound.model_validate(row) if row else None


def latest_reply(conn: Connection, term: str) -> Inbound | None:
    row = conn.execute(LATEST_REPLY, {"like": f"%{term}%"}).fetchone()
    return Inbound.model_validate(row) if row else None


def counts(conn: Connection) -> dict[str, int]:
    return {r["status"]: r["n"] for r in conn.execute(COUNTS).fetchall()}


def since_day(polled_at: datetime) -> date:
    """The first day a renumbered folder is searched from: the day before the last poll, since IMAP's SEARCH
    SINCE compares dates only, in the server's time zone (pure)."""
    return polled_at.date() - timedelta(days=1)
