"""State changes with their consequences: what ends when a run or an approval ends, in the same transaction.

The record modules (`runs`, `approvals`) change rows and return what ended; these functions, one level
above them, withdraw a finished run's pending approvals and queue the edits that take every ended
approval's buttons off its copies (`delivery.copies.queue_edits`). Every caller outside the records goes
through here, so no path can end an approval and leave a copy offering buttons that answer nothing.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection

from orchestrator import approvals, runs
from orchestrator.approvals import Approval, ApprovalRequest, Asked, Decision
from orchestrator.delivery.copies import queue_edits
from orchestrator.errors import ApprovalExpired
from orchestrator.runs import Run, RunEvent


def move_run(conn: Connection, run_id: int, event: RunEvent, *, actor: str, now: datetime, reason: str = "",
             payload: dict[str, Any] | None = None) -> Run:
    """`runs.transition`, and when the run finishes, its pending approvals withdrawn with their copies edited."""
    run = runs.transition(conn, run_id, event, actor=actor, now=now, reason=reason, payload=payload)
    if run.state.finished:
        withdrawn = approvals.withdraw(conn, run_id=run_id, intent_id=run.intent_id, outcome=run.state.value,
                                       now=now)
        queue_edits(conn, withdrawn, run_outcome=run.state.value)
    return run


def ask_approval(conn: Connection, *, run_id: int, intent_id: int, step: str, digest: str, ask: ApprovalRequest,
                 ttl: timedelta, now: datetime) -> Asked:
    """`approvals.request`, with the copies of the approvals it voided or expired edited."""
    asked = approvals.request(conn, run_id=run_id, intent_id=intent_id, step=step, digest=digest, ask=ask,
                              ttl=ttl, now=now)
    queue_edits(conn, asked.ended)
    return asked


def decide_approval(conn: Connection, approval_id: str, decision: Decision, *, identity: str, channel: str,
                    intent_id: int, now: datetime) -> Approval:
    """`approvals.decide`, with every copy of the decided approval edited; raises as it does.

    A click that comes too late marks the approval expired before raising ApprovalExpired: its copies are
    edited too, and the caller's transaction keeps both.
    """
    try:
        decided = approvals.decide(conn, approval_id, decision, identity=identity, channel=channel,
                                   intent_id=intent_id, now=now)
    except ApprovalExpired as expired:
        if expired.recorded:
            queue_edits(conn, [approvals.get(conn, approval_id)])
        raise
    queue_edits(conn, [decided])
    return decided
