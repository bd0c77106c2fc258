"""Decisions: an operator's Approve / Reject (a button, typed, or the dashboard), recorded once, and "Why?".

Where an approval is decided: `decide` takes the run's row lock, then `transitions.decide_approval`
records the decision once (the approval's row lock) and queues the edits of its every copy. The same operator
making the same decision again is answered as its success (a double click, or a front end retrying a call whose
decision committed before its answer was lost); another operator's or another decision's click, or one on a stale
or expired approval, changes nothing and is told so.
"""
from __future__ import annotations

from pydantic import BaseModel

from orchestrator import agent_calls, approvals, intents, outbox, runs, words
from orchestrator.approvals import Approval, Decision
from orchestrator.chat.requester import Requester, refuse
from orchestrator.errors import ApprovalAlreadyDecided, ApprovalExpired, ApprovalStale, NotFound
from orchestrator.messages import Message
from orchestrator.queue import enqueue_advance
from orchestrator.runs import RunEvent, RunState
from orchestrator.services import Services
from orchestrator.transitions import decide_approval, move_run


class Decided(BaseModel):
    """The outcome of a button click: a reply for the clicker, and the approval message as it should now read."""

    reply: Message
    approval: Approval | None = None
    updated: Message | None = None
    changed: bool = False
    # The clicker's own decision, recorded before (a retry, a double click): answered as done, nothing recorded again.
    repeat: bool = False


def decide(services: Services, who: Requester, approval_id: str, decision: Decision) -> Decided:
    """Record a decision once, move the run on; a second click or a stale approval changes nothing.

    A decision the same identity already made is answered as made now (`repeat`), so a caller may retry a call that
    raised a store error after its transaction committed: the operator is not told a click that counted did not.

    However it is made (a button, typed, the dashboard), the decision queues in its transaction an edit
    of every message carrying this approval's buttons, on every channel (see `transitions.decide_approval`).
    """
    if not services.policy.is_operator(who.identity):
        return Decided(reply=refuse(services, who, f"{decision.value} approval", {"approval": approval_id}))
    try:
        with services.stores.pool.connection() as conn, conn.transaction():
            pending = approvals.get(conn, approval_id)
            run = runs.get(conn, pending.run_id, for_update=True)
            try:
                approval = decide_approval(conn, approval_id, decision, identity=who.identity,
                                            channel=who.channel, intent_id=run.intent_id, now=services.now())
            except ApprovalExpired as expired:
                # Caught inside the transaction so that marking the approval expired, and its audit
                # event, commit: the click changed nothing else, but the record says it came too late.
                return Decided(reply=words.already_decided(str(expired)))
            if run.state is RunState.AWAITING_APPROVAL:
                event = RunEvent.APPROVE if decision is Decision.APPROVED else RunEvent.REJECT
                reason = "" if decision is Decision.APPROVED else f"rejected by {who.identity}"
                move_run(conn, run.id, event, actor=who.identity, now=services.now(), reason=reason,
                                payload={"approval": approval_id})
    except NotFound:
        return Decided(reply=words.invalid_request("that approval does not exist"))
    except ApprovalAlreadyDecided as error:
        with services.stores.pool.connection() as conn:
            current = approvals.get(conn, approval_id)
        updated = words.approval_decided(current)
        if error.decided_by == who.identity and error.decision == decision.value:
            if decision is Decision.APPROVED:
                # The first call may have failed before it enqueued; a second advance of a moving run does nothing.
                enqueue_advance(services.stores.redis, current.run_id, queue_name="interactive")
            return Decided(reply=updated, approval=current, updated=updated, changed=True, repeat=True)
        return Decided(reply=words.already_decided(str(error)), approval=current, updated=updated)
    except ApprovalStale as error:
        return Decided(reply=words.already_decided(str(error)))
    if decision is Decision.APPROVED:
        enqueue_advance(services.stores.redis, approval.run_id, queue_name="interactive")
    updated = words.approval_decided(approval)
    return Decided(reply=updated, approval=approval, updated=updated, changed=True)


def explain(services: Services, approval_id: str) -> Message:
    """The "Why?" button: the intent, the step, the data and the model behind the action."""
    try:
        with services.stores.pool.connection() as conn:
            approval = approvals.get(conn, approval_id)
            run = runs.get(conn, approval.run_id)
            intent = intents.get(conn, run.intent_id)
            calls = agent_calls.for_run(conn, run.id)
    except NotFound:
        return words.invalid_request("that approval does not exist")
    cited = [c for call in calls for c in call.output.get("cited", [])]
    model = ", ".join(sorted({f"{c.model} ({c.tier} tier)" for c in calls})) or None
    return words.explanation(approval, intent, cited, model)


def approval_messages(services: Services, approval_id: str) -> list[outbox.OutboxItem]:
    """Every message carrying this approval's buttons (its requests, digests), with where each was delivered.

    Their edits are queued when the approval leaves pending (see `transitions.decide_approval`); a front end reads
    this to tell a copy opsos will edit from a clicked message it has no record of.
    """
    with services.stores.pool.connection() as conn:
        return outbox.copies(conn, approval_id)
