"""Copies of approval buttons: how each reads when it goes out, and the edits queued when an approval ends.

Copies are composed at the moment they go out: a copy (an approval request, a digest) is sent with the
buttons of approvals that already left pending taken off and their outcome under it, and an edit
re-renders its copy the same way from what is true when it is sent. Both read the same record, so
however a copy gets there (sent late, edited once or twice), it reads the same.

When an approval ends, `queue_edits` queues an edit of each copy with how it ended (an `Ending`), in the
transaction that ended it; the words are composed from the record here, when the edit goes out.
"""
from __future__ import annotations

from datetime import datetime

import psycopg
import structlog
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from orchestrator import approvals, buttons, outbox, words
from orchestrator.approvals import Approval, ApprovalState
from orchestrator.messages import Message
from orchestrator.outbox import Ending, OutboxItem

log = structlog.get_logger(__name__)


class Ready(BaseModel):
    """One claimed row made ready to go: what it shows now, and for an edit the copy it changes."""

    item: OutboxItem
    message: Message
    target: OutboxItem | None = None
    # For an edit, how its approval ended in words: the row as the sender gets it carries this message.
    decision: Message | None = None
    # The approvals whose outcome `message` shows, kept in the delivery reference so a later edit that would
    # show nothing new is settled without a call.
    settled: list[str] = Field(default_factory=list)
    # Why nothing needs to go out (the copy already shows this outcome, or there is no copy to change).
    skip: str | None = None


def as_it_reads(message: Message, decisions: list[Message]) -> Message:
    """A copy of approval buttons as it reads once `decisions`' approvals left pending (pure).

    The same content, the buttons of those approvals gone (others stay live: a digest carries several), and
    one outcome line for each under it.
    """
    if not decisions:
        return message
    gone = {decision.approval_id for decision in decisions}
    live = [action for action in message.actions if buttons.approval_of(action.value) not in gone]
    return message.model_copy(update={"actions": live, "sections": [*message.sections, words.outcome(decisions)]})


def queue_edits(conn: psycopg.Connection, ended: list[Approval], *, run_outcome: str | None = None) -> None:
    """Queue, in the caller's transaction, an edit of every copy of each approval in `ended` (each as it ended;
    `run_outcome` when its run's end withdrew it), so no copy on any platform keeps live buttons."""
    for approval in ended:
        outbox.edit_copies(conn, approval_id=approval.id,
                           ending=Ending(state=approval.state.value, run_outcome=run_outcome))


def ended_as(approval: Approval, ending: Ending) -> Message:
    """How an approval reads in its copies once it ended as `ending` says (pure)."""
    shown = approval.model_copy(update={"state": ApprovalState(ending.state)})
    withdrawn = words.withdrawn(approval.run_id, ending.run_outcome) if ending.run_outcome else None
    return words.approval_decided(shown, withdrawn=withdrawn)


def _edit_words(edit: OutboxItem, records: dict[str, Approval]) -> Message | None:
    # Edit rows queued before their ending was kept carry their composed words instead.
    if edit.ending is None:
        return edit.message
    record = records.get(edit.approval_id or "")
    return ended_as(record, edit.ending) if record is not None else None


def _decisions(conn: psycopg.Connection, copy: OutboxItem, now: datetime) -> list[Message]:
    """The outcomes a copy shows at `now`, in the order of its buttons.

    An approval's queued edit says how it ended when it left pending, so a copy keeps telling the same end
    (say, expired) even if the record later reads otherwise (void, when the run asked anew). Approvals
    without an edit for this copy (it was composed before their end and committed after) are read from
    their record.
    """
    edits = {edit.approval_id: edit for edit in outbox.edits(conn, copy.id) if edit.approval_id}
    records = approvals.by_ids(conn, list(copy.approval_buttons))
    decisions = []
    for approval_id in copy.approval_buttons:
        if approval_id in edits:
            if (recorded := _edit_words(edits[approval_id], records)) is not None:
                decisions.append(recorded)
        elif approval_id in records and (shown := approvals.shown_as(records[approval_id], now)) is not None:
            decisions.append(words.approval_decided(shown))
    return decisions


def prepare(conn: psycopg.Connection, item: OutboxItem, *, now: datetime) -> Ready:
    """What a claimed row shows when it goes out at `now`: any post as queued, a copy of approval buttons
    and an edit as the copy reads now (see `as_it_reads`). Reads only; the caller sends and settles."""
    if item.edit_of is None:
        if not item.approval_buttons:
            return Ready(item=item, message=item.message)
        decisions = _decisions(conn, item, now)
        return Ready(item=item, message=as_it_reads(item.message, decisions),
                     settled=[decision.approval_id for decision in decisions if decision.approval_id])
    target = outbox.get(conn, item.edit_of)
    if not target.delivery_ref:
        return Ready(item=item, message=item.message, target=target, skip="the copy has no platform reference")
    shown = set(target.delivery_ref.get("settled", []))
    for earlier in outbox.edits(conn, target.id):
        if earlier.state == "delivered" and earlier.delivery_ref:
            shown.update(earlier.delivery_ref.get("settled", []))
    if item.approval_id in shown:
        return Ready(item=item, message=item.message, target=target, skip="the copy already shows this outcome")
    decisions = _decisions(conn, target, now)
    decision = next((d for d in decisions if d.approval_id == item.approval_id), None)
    return Ready(item=item, message=as_it_reads(target.message, decisions), target=target, decision=decision,
                 settled=[decision.approval_id for decision in decisions if decision.approval_id])


def expire_copies(pool: ConnectionPool, *, now: datetime) -> list[str]:
    """Queue the edits that show expired every copy of an approval past its time; returns those approvals."""
    with pool.connection() as conn, conn.transaction():
        lapsed = approvals.lapse(conn, now=now)
        queue_edits(conn, lapsed)
    if lapsed:
        log.info("approvals.lapsed", approvals=[approval.id for approval in lapsed])
    return [approval.id for approval in lapsed]
