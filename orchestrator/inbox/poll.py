"""The mailbox poller: reads new mail from the operator's folder and makes each message what it is to the business.

A message from a known contact becomes a `customer_interaction` memory about them; a reply to an email opsos sent
is also linked to that email's action and run, and the operator is told in chat. Anything else is recorded and
counted, never remembered.

Exactly once, across crashes: each message is taken in its own transaction, which locks the folder's cursor,
records the message under (folder, uidvalidity, uid), writes its memory, links, audit event and chat message, and
moves the cursor past it. A poller killed mid-batch leaves every message before the one it was on done and that
one undone; the next poll starts right after the last one done. A message that cannot be read (too large,
malformed, not in its charset) is recorded as such and passed, so it never holds up the ones after it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import psycopg
import structlog
from psycopg import Connection
from pydantic import BaseModel

from connectors import (
    Fetched,
    FolderState,
    ImapMailbox,
    InboundEmail,
    MailboxSession,
    Unreadable,
    new_text,
    read_email,
    read_header,
)
from memory import Kind, link
from orchestrator import audit, delivery, outbox, words
from orchestrator.inbox import records
from orchestrator.inbox.records import RepliedTo, Status
from orchestrator.services import Services
from orchestrator.settings import Settings
from orchestrator.workflows import WORKFLOWS

log = structlog.get_logger(__name__)

# Messages fetched per IMAP round trip: at most this many bodies (each under the size limit) are held at once.
FETCH_CHUNK = 10
RUN_OF = "SELECT intent_id, workflow FROM runs WHERE id = %s"


class Polled(BaseModel):
    """What one poll read, by what became of each message."""

    folder: str
    uidvalidity: int
    read: int
    statuses: dict[str, int]
    # The folder's first poll: it starts at the end of the folder, so years of mail are not read into memory.
    started: bool = False
    # The server renumbered the folder (a new UIDVALIDITY): read again since the last poll, Message-IDs deduped.
    renumbered: bool = False


def mailbox_of(settings: Settings) -> ImapMailbox | None:
    """The operator's mailbox from OPSOS_IMAP_*; None when no IMAP host is set."""
    if not settings.imap_host:
        return None
    return ImapMailbox(
        host=settings.imap_host, port=settings.imap_port_or_default, user=settings.imap_user or "",
        password=settings.imap_password.get_secret_value() if settings.imap_password else "",
        folder=settings.imap_folder, ssl=settings.imap_ssl, timeout=settings.imap_timeout_seconds,
        max_bytes=settings.imap_max_message_bytes,
    )


def poll(services: Services, mailbox: ImapMailbox) -> Polled:
    """Read what arrived since the last poll, at most `imap_batch` messages; raises ConnectorUnavailable when the
    mailbox cannot be reached (nothing is lost: the next poll starts where this one could not)."""
    with mailbox.session() as session:
        state = session.state
        last_uid, started, renumbered = _position(services, session)
        uids = session.uids_after(last_uid, limit=services.settings.imap_batch)
        tally: Counter[str] = Counter()
        for start in range(0, len(uids), FETCH_CHUNK):
            for fetched in session.fetch(uids[start:start + FETCH_CHUNK]):
                status = _take(services, state, fetched)
                if status is not None:
                    tally[status.value] += 1
        with services.stores.pool.connection() as conn, conn.transaction():
            records.touch(conn, folder=state.folder, now=services.now())
    polled = Polled(folder=state.folder, uidvalidity=state.uidvalidity, read=sum(tally.values()),
                    statuses=dict(tally), started=started, renumbered=renumbered)
    log.info("mailbox.polled", **polled.model_dump())
    return polled


def _position(services: Services, session: MailboxSession) -> tuple[int, bool, bool]:
    """The UID to read after: the cursor's, or where a first poll or a renumbered folder starts."""
    state, now = session.state, services.now()
    with services.stores.pool.connection() as conn, conn.transaction():
        cursor = records.lock_cursor(conn, state.folder)
        if cursor is None:
            records.start_cursor(conn, folder=state.folder, uidvalidity=state.uidvalidity,
                                 last_uid=state.uidnext - 1, now=now)
            log.info("mailbox.started", folder=state.folder, uidvalidity=state.uidvalidity, after_uid=state.uidnext - 1)
            return state.uidnext - 1, True, False
        if cursor.uidvalidity == state.uidvalidity:
            return cursor.last_uid, False, False
        # The old UIDs mean nothing now. Whatever the server took in since the day before the last poll is read
        # again; what was read before is known by its Message-ID and recorded as a duplicate, not remembered twice.
        since = session.uids_since(records.since_day(cursor.polled_at))
        last_uid = since[0] - 1 if since else state.uidnext - 1
        records.move_cursor(conn, folder=state.folder, uidvalidity=state.uidvalidity, last_uid=last_uid, now=now)
        log.warning("mailbox.renumbered", folder=state.folder, was=cursor.uidvalidity, now=state.uidvalidity,
                    rereading=len(since))
        return last_uid, False, True


def _take(services: Services, state: FolderState, fetched: Fetched) -> Status | None:
    """Record one message in its turn; None when another poller took it first."""
    limit = services.settings.imap_max_message_bytes
    read = read_email(fetched.raw) if fetched.raw is not None else read_header(fetched.header, size=fetched.size,
                                                                                 limit=limit)
    try:
        return _in_turn(services, state, fetched.uid, lambda conn: _record(services, conn, state, fetched, read))
    except psycopg.OperationalError:
        # The database went away: nothing of this message committed, and the next poll starts at it again.
        raise
    except Exception as error:
        log.exception("mailbox.message_failed", folder=state.folder, uid=fetched.uid)
        failed = Unreadable(reason="malformed", detail=f"{type(error).__name__}: {error}"[:300],
                            message_id=read.message_id, sender=read.sender)
        return _in_turn(services, state, fetched.uid,
                        lambda conn: _unreadable(services, conn, state, fetched, failed, status=Status.FAILED))


def _in_turn(services: Services, state: FolderState, uid: int,
             write: Callable[[Connection], Status | None]) -> Status | None:
    with services.stores.pool.connection() as conn, conn.transaction():
        # The cursor's row lock (records.LOCK_CURSOR) orders this message after any other poller's; past it, the
        # message was taken, and under another UIDVALIDITY this UID is not the message it was.
        cursor = records.lock_cursor(conn, state.folder)
        if cursor is None or cursor.uidvalidity != state.uidvalidity or cursor.last_uid >= uid:
            return None
        status = write(conn)
        records.advance(conn, folder=state.folder, uidvalidity=state.uidvalidity, uid=uid)
    return status


def _base(services: Services, state: FolderState, fetched: Fetched) -> dict[str, object]:
    return {"folder": state.folder, "uidvalidity": state.uidvalidity, "uid": fetched.uid, "size": fetched.size,
            "received_at": services.now()}


def _unreadable(services: Services, conn: Connection, state: FolderState, fetched: Fetched, read: Unreadable,
                *, status: Status | None = None) -> Status:
    recorded = status or Status(read.reason)
    records.record(conn, **_base(services, state, fetched), status=recorded, message_id=read.message_id,
                   sender=read.sender, detail=read.detail)
    log.warning("mailbox.unreadable", folder=state.folder, uid=fetched.uid, status=recorded.value, detail=read.detail)
    return recorded


def _record(services: Services, conn: Connection, state: FolderState, fetched: Fetched,
            read: InboundEmail | Unreadable) -> Status | None:
    if isinstance(read, Unreadable):
        return _unreadable(services, conn, state, fetched, read)
    fields = {**_base(services, state, fetched), "message_id": read.message_id, "sender": read.sender,
              "sender_name": read.sender_name, "subject": read.subject, "sent_at": read.sent_at,
              "attachments": read.attachments, "preview": new_text(read.text)}
    if records.seen(conn, folder=state.folder, message_id=read.message_id):
        records.record(conn, **fields, status=Status.DUPLICATE)
        return Status.DUPLICATE
    replied = records.replied_to(conn, answers=read.answers, sender=read.sender)
    contact = services.crm.by_email(read.sender) or (services.crm.by_email(replied.to) if replied else None)
    if contact is None and replied is None:
        records.record(conn, **fields, status=Status.UNKNOWN_SENDER)
        return Status.UNKNOWN_SENDER
    status = Status.REPLY if replied else Status.REMEMBERED
    run = conn.execute(RUN_OF, (replied.run_id,)).fetchone() if replied and replied.run_id else None
    run_id, intent_id = (replied.run_id, run["intent_id"]) if replied and run else (None, None)
    inbound_id = records.record(conn, **fields, status=status, contact_id=contact.id if contact else None,
                                action_key=replied.key if replied else None, run_id=run_id)
    if inbound_id is None:
        return None
    what = _what(replied, run)
    memory_id = None
    if contact is not None:
        text = words.interaction_text(who=contact.name, address=read.sender, sent_at=read.sent_at,
                                      subject=read.subject, text=str(fields["preview"]),
                                      attachments=read.attachments, replied_to=what)
        memory = services.memory.remember(
            text, kind=Kind.CUSTOMER_INTERACTION, subject=contact.name, conn=conn,
            ref=f"email:{read.message_id}" if read.message_id else None,
            provenance={"source": f"email:{state.folder}", "inbound_email": inbound_id,
                        "message_id": read.message_id, "run_id": run_id, "intent_id": intent_id},
        )
        memory_id = memory.id
        records.set_memory(conn, inbound_id, memory.id)
        link(conn, ("memory", memory.id), ("contact", contact.id), "about")
        link(conn, ("memory", memory.id), ("inbound_email", inbound_id), "learned_from")
    if replied is not None:
        link(conn, ("inbound_email", inbound_id), ("action", replied.key), "replies_to")
        if run_id is not None:
            # A reply is part of the run's story: "why?" from the reply walks up to the run and its intent.
            link(conn, ("inbound_email", inbound_id), ("run", run_id), "part_of")
        message = words.reply_received(who=contact.name if contact else (read.sender_name or read.sender),
                                       replied_to=what or "", run_id=run_id, subject=read.subject,
                                       text=str(fields["preview"]), attachments=read.attachments)
        channel, conversation = delivery.operator_address(conn, services.settings.home_channel)
        outbox.post(conn, channel=channel, conversation=conversation, message=message, intent_id=intent_id,
                    run_id=run_id, dedupe_key=f"reply:{inbound_id}")
    audit.append(conn, actor="mailbox", kind=f"email.{status.value}", at=services.now(), intent_id=intent_id,
                 run_id=run_id, payload={"inbound_email": inbound_id, "folder": state.folder, "uid": fetched.uid,
                                         "from": read.sender, "contact": contact.id if contact else None,
                                         "memory": memory_id, "action": replied.key if replied else None})
    return status


def _what(replied: RepliedTo | None, run: dict | None) -> str | None:
    """What was replied to, as the operator calls it: the run's workflow ("win-back campaign"), or the email."""
    if replied is None:
        return None
    workflow = WORKFLOWS.get(run["workflow"]) if run else None
    return workflow.title if workflow else f"email “{replied.subject}”"
