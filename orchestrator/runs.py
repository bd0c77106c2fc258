"""Runs: the state machine (pure) and its persistence, where every transition appends its audit event.

    queued → running → awaiting_approval → running → succeeded | failed | compensated | cancelled
    paused from any live state; resume returns to the state it was paused from.
    running → compensating → compensated | failed: a failed step's undoing is a state of its own, so a
    worker that dies half-way leaves a run that recovery finishes undoing, never one it runs forward.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg import Connection
from pydantic import BaseModel

from memory import link
from orchestrator import audit
from orchestrator.errors import InvalidTransition, NotFound


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    PAUSED = "paused"
    COMPENSATING = "compensating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATED = "compensated"
    CANCELLED = "cancelled"

    @property
    def live(self) -> bool:
        return self in LIVE

    @property
    def finished(self) -> bool:
        return self in FINISHED


class RunEvent(StrEnum):
    START = "start"
    AWAIT_APPROVAL = "await_approval"
    APPROVE = "approve"
    REJECT = "reject"
    SUCCEED = "succeed"
    FAIL = "fail"
    COMPENSATE = "compensate"
    UNWIND = "unwind"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


LIVE = frozenset({RunState.QUEUED, RunState.RUNNING, RunState.AWAITING_APPROVAL})
FINISHED = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.COMPENSATED, RunState.CANCELLED})

_TRANSITIONS: dict[tuple[RunState, RunEvent], RunState] = {
    (RunState.QUEUED, RunEvent.START): RunState.RUNNING,
    (RunState.RUNNING, RunEvent.AWAIT_APPROVAL): RunState.AWAITING_APPROVAL,
    (RunState.AWAITING_APPROVAL, RunEvent.APPROVE): RunState.RUNNING,
    (RunState.AWAITING_APPROVAL, RunEvent.REJECT): RunState.CANCELLED,
    (RunState.RUNNING, RunEvent.SUCCEED): RunState.SUCCEEDED,
    (RunState.RUNNING, RunEvent.FAIL): RunState.FAILED,
    (RunState.RUNNING, RunEvent.COMPENSATE): RunState.COMPENSATED,
    (RunState.RUNNING, RunEvent.UNWIND): RunState.COMPENSATING,
    (RunState.COMPENSATING, RunEvent.COMPENSATE): RunState.COMPENSATED,
    (RunState.COMPENSATING, RunEvent.FAIL): RunState.FAILED,
}


def next_state(state: RunState, event: RunEvent, *, paused_from: RunState | None = None) -> RunState:
    """The state after `event`, or InvalidTransition. Pure: no I/O, so every edge has a unit test."""
    if event is RunEvent.PAUSE and state.live:
        return RunState.PAUSED
    if event is RunEvent.RESUME and state is RunState.PAUSED:
        return paused_from or RunState.QUEUED
    if event is RunEvent.CANCEL and (state.live or state is RunState.PAUSED):
        return RunState.CANCELLED
    try:
        return _TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state.value, event.value) from None


class Run(BaseModel):
    id: int
    intent_id: int
    workflow: str
    state: RunState
    reason: str
    paused_from: RunState | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


INSERT = "INSERT INTO runs (intent_id, workflow, state) VALUES (%s, %s, %s) RETURNING *"
LOCK = "SELECT * FROM runs WHERE id = %s FOR UPDATE"
UPDATE = """
UPDATE runs SET state = %(state)s, reason = %(reason)s, paused_from = %(paused_from)s, updated_at = now(),
    finished_at = CASE WHEN %(finished)s THEN now() ELSE NULL END
WHERE id = %(id)s RETURNING *
"""


def create(conn: Connection, *, intent_id: int, workflow: str, actor: str, now: datetime) -> Run:
    run = Run.model_validate(conn.execute(INSERT, (intent_id, workflow, RunState.QUEUED)).fetchone())
    link(conn, ("run", run.id), ("intent", intent_id), "part_of")
    audit.append(conn, actor=actor, kind="run.created", intent_id=intent_id, run_id=run.id, at=now,
                 payload={"workflow": workflow, "state": run.state})
    return run


def get(conn: Connection, run_id: int, *, for_update: bool = False) -> Run:
    row = conn.execute(LOCK if for_update else "SELECT * FROM runs WHERE id = %s", (run_id,)).fetchone()
    if row is None:
        raise NotFound("run", run_id)
    return Run.model_validate(row)


def transition(
    conn: Connection,
    run_id: int,
    event: RunEvent,
    *,
    actor: str,
    now: datetime,
    reason: str = "",
    payload: dict[str, Any] | None = None,
) -> Run:
    """Move a run by `event` inside the caller's transaction, with its audit event.

    The row lock (FOR UPDATE) orders concurrent transitions of one run: a button click and a
    worker finishing a step cannot both read `awaiting_approval` and both act on it. A record function:
    what ends with the run (its pending approvals) is `transitions.move_run`'s business.
    """
    run = get(conn, run_id, for_update=True)
    target = next_state(run.state, event, paused_from=run.paused_from)
    paused_from = run.state if target is RunState.PAUSED else None
    row = conn.execute(
        UPDATE,
        {"id": run_id, "state": target, "reason": reason, "paused_from": paused_from, "finished": target.finished},
    ).fetchone()
    audit.append(
        conn, actor=actor, kind=f"run.{event.value}", intent_id=run.intent_id, run_id=run_id, at=now,
        payload={"from": run.state, "to": target, "reason": reason, **(payload or {})},
    )
    return Run.model_validate(row)

