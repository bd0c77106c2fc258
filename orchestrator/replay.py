"""Replay: a run's state rebuilt from its audit events alone, and every place the tables disagree with it.

`fold` is pure (events in, state out): it applies the run state machine (`runs.next_state`) to each
`run.*` event and follows steps, approvals and agent calls through theirs, so the same events always
give the same replay. `check` reads a run's events and rows and compares the two, and says whether
the audit chain holds for the events the replay used.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from psycopg import Connection
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field, computed_field

from orchestrator import audit, runs
from orchestrator.agent_calls import AgentCall
from orchestrator.approvals import Approval, ApprovalState
from orchestrator.audit import AuditEvent, ChainReport
from orchestrator.errors import InvalidTransition, NotFound
from orchestrator.runs import Run, RunEvent, RunState
from orchestrator.steps import StepRecord, StepState

RUN = "SELECT * FROM runs WHERE id = %s"
STEPS_OF_RUN = "SELECT * FROM steps WHERE run_id = %s ORDER BY position, name"
APPROVALS_OF_RUN = "SELECT * FROM approvals WHERE run_id = %s ORDER BY requested_at, id"
CALLS_OF_RUN = "SELECT * FROM agent_calls WHERE run_id = %s ORDER BY id"
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

# The engine pauses a run as "worker" only when a step's outside system stayed down (engine._hold). Logs
# written before the engine appended `step.failed` show that step's failure only through this pause.
WORKER = "worker"
# The payload fields worth a glance in a timeline, in the order they read best.
_DETAIL_KEYS = ("step", "attempt", "approval", "via", "tier", "model", "customer", "reason", "error")
# agent_calls.cost_usd is numeric(12, 6): the event keeps the unrounded float the column was given.
_COST_TOLERANCE = 1e-6
# How many of the latest events a chat reply shows; `opsos replay` prints them all.


class Flag(BaseModel):
    """An event the replay could not apply as the log records it."""

    event_id: int
    kind: str
    problem: str


class StepReplay(BaseModel):
    name: str
    state: StepState
    attempts: int


class ApprovalReplay(BaseModel):
    id: str
    step: str | None = None
    digest: str | None = None
    state: ApprovalState
    decided_by: str | None = None
    decided_via: str | None = None
    # When the decision was logged; the table's decided_at is the injected clock's, so it is not compared.
    decided_at: datetime | None = None


class CallReplay(BaseModel):
    id: int
    step: str
    tier: str
    model: str
    tokens: int
    cost_usd: float


class Moment(BaseModel):
    """One line of the timeline: an event and the run's state after it (None before `run.created`)."""

    event_id: int
    at: datetime
    actor: str
    kind: str
    detail: str
    state: RunState | None


class RunReplay(BaseModel):
    """Everything the log says about one run, in event order."""

    run_id: int
    workflow: str | None = None
    state: RunState | None = None
    paused_from: RunState | None = None
    reason: str = ""
    steps: list[StepReplay] = Field(default_factory=list)
    approvals: list[ApprovalReplay] = Field(default_factory=list)
    calls: list[CallReplay] = Field(default_factory=list)
    timeline: list[Moment] = Field(default_factory=list)
    flags: list[Flag] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def finished(self) -> bool:
        return self.state is not None and self.state.finished

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_usd(self) -> float:
        return sum(call.cost_usd for call in self.calls)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tokens(self) -> int:
        return sum(call.tokens for call in self.calls)

    @property
    def last_event_id(self) -> int | None:
        return self.timeline[-1].event_id if self.timeline else None


class Disagreement(BaseModel):
    """One field where a row and the replay differ; `table` is "no row" or `log` "no event" when one side lacks it."""

    subject: str
    field: str
    table: str
    log: str


class ReplayReport(BaseModel):
    replay: RunReplay
    disagreements: list[Disagreement]
    chain: ChainReport
    # True when verification got past the last event the replay used: a break after it does not touch them.
    chain_holds: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def agrees(self) -> bool:
        return not self.disagreements and not self.replay.flags and self.chain_holds


# -- the fold (pure) --------------------------------------------------------------------------------

class _Fold:
    """The replay under construction; `apply` takes one event. Dicts keep first-seen (event) order."""

    def __init__(self, run_id: int) -> None:
        self.out = RunReplay(run_id=run_id)
        self.steps: dict[str, StepReplay] = {}
        self.approvals: dict[str, ApprovalReplay] = {}
        self.calls: dict[int, CallReplay] = {}

    def flag(self, event: AuditEvent, problem: str) -> None:
        self.out.flags.append(Flag(event_id=event.id, kind=event.kind, problem=problem))

    def apply(self, event: AuditEvent) -> None:
        kind, payload = event.kind, event.payload
        if kind == "run.created":
            self.created(event)
        elif kind.startswith("run."):
            self.transition(event)
        elif kind.startswith("step."):
            self.step(event)
        elif kind.startswith("approval."):
            self.approval(event)
        elif kind == "agent.called":
            self.call(event)
        # Any other kind (payment.*, budget.*, params.missing, sla.*) changes no row the replay rebuilds:
        # it is in the timeline only.
        out = self.out
        out.timeline.append(Moment(event_id=event.id, at=event.at, actor=event.actor, kind=kind,
                                   detail=_detail(payload), state=out.state))

    def created(self, event: AuditEvent) -> None:
        if self.out.state is not None:
            self.flag(event, "the run was already created")
            return
        try:
            self.out.state = RunState(event.payload.get("state", RunState.QUEUED))
        except ValueError:
            self.flag(event, f"it creates the run in an unknown state {event.payload.get('state')!r}")
            self.out.state = RunState.QUEUED
        self.out.workflow = event.payload.get("workflow")

    def transition(self, event: AuditEvent) -> None:
        out, payload = self.out, event.payload
        if event.kind == "run.await_approval" and isinstance(payload.get("step"), str):
            # engine._await_approval marks the step waiting in this event's transaction, whatever the run does.
            self.set_step(payload["step"], StepState.WAITING)
        try:
            run_event = RunEvent(event.kind.removeprefix("run."))
        except ValueError:
            self.flag(event, "the run state machine has no such event")
            return
        recorded_from, recorded_to = payload.get("from"), payload.get("to")
        if out.state is None:
            # Nothing to apply it to: take the log's word for where it went, so one gap is one flag.
            self.flag(event, "it comes before the run was created")
            out.state = _state(recorded_to)
            return
        if recorded_from is not None and recorded_from != out.state.value:
            self.flag(event, f"it says the run moved from {recorded_from}, but replayed it was {out.state.value}")
        try:
            target = runs.next_state(out.state, run_event, paused_from=out.paused_from)
        except InvalidTransition as refused:
            # The replay keeps the state the machine allows; later events are judged against it.
            self.flag(event, f"the state machine refuses it: {refused}")
            return
        if recorded_to is not None and recorded_to != target.value:
            self.flag(event, f"it says the run moved to {recorded_to}, but the state machine gives {target.value}")
        # As runs.transition writes the row: paused_from only while paused, the reason replaced each time.
        out.paused_from = out.state if target is RunState.PAUSED else None
        out.state = target
        out.reason = str(payload.get("reason", ""))
        if run_event in (RunEvent.FAIL, RunEvent.COMPENSATE) or (
                run_event is RunEvent.PAUSE and event.actor == WORKER):
            # In logs from before `step.failed` existed, this is the only place the step that broke shows.
            self.fail_running()

    def step(self, event: AuditEvent) -> None:
        name = event.payload.get("step")
        if not isinstance(name, str):
            self.flag(event, "it names no step")
            return
        current = self.steps.get(name)
        match event.kind:
            case "step.started":
                if self.out.state is not RunState.RUNNING:
                    # The engine starts a step only under the run's row lock, having read it running.
                    state = self.out.state.value if self.out.state else "not created"
                    self.flag(event, f"a step started while the run was {state}")
                attempt = event.payload.get("attempt")
                attempts = attempt if isinstance(attempt, int) else (current.attempts + 1 if current else 1)
                self.steps[name] = StepReplay(name=name, state=StepState.RUNNING, attempts=attempts)
            case "step.succeeded":
                self.set_step(name, StepState.SUCCEEDED)
            case "step.failed":
                self.set_step(name, StepState.FAILED)
            case "step.waiting":
                self.set_step(name, StepState.WAITING)
            case "step.compensated" | "step.compensation_failed":
                # The step that broke compensates too but stays failed; one that had succeeded is now undone.
                if current is None or current.state in (StepState.RUNNING, StepState.FAILED):
                    self.set_step(name, StepState.FAILED)
                elif event.kind == "step.compensated":
                    self.set_step(name, StepState.COMPENSATED)

    def set_step(self, name: str, state: StepState) -> None:
        current = self.steps.get(name)
        self.steps[name] = StepReplay(name=name, state=state, attempts=current.attempts if current else 0)

    def fail_running(self) -> None:
        for name, step in self.steps.items():
            if step.state is StepState.RUNNING:
                self.steps[name] = step.model_copy(update={"state": StepState.FAILED})

    def approval(self, event: AuditEvent) -> None:
        payload = event.payload
        approval_id = payload.get("approval")
        if not isinstance(approval_id, str):
            self.flag(event, "it names no approval")
            return
        word = event.kind.removeprefix("approval.")
        try:
            target = ApprovalState.PENDING if word == "requested" else ApprovalState(word)
        except ValueError:
            self.flag(event, "approvals have no such state")
            return
        current = self.approvals.get(approval_id)
        if target is ApprovalState.PENDING:
            if current is not None:
                self.flag(event, f"approval {approval_id} was already asked")
            self.approvals[approval_id] = ApprovalReplay(id=approval_id, step=payload.get("step"),
                                                         digest=payload.get("digest"), state=target)
            if isinstance(payload.get("step"), str):
                self.set_step(payload["step"], StepState.WAITING)
            return
        if current is None:
            self.flag(event, f"approval {approval_id} was never asked in this run's log")
            current = ApprovalReplay(id=approval_id, step=payload.get("step"), digest=payload.get("digest"),
                                     state=ApprovalState.PENDING)
        elif current.state is not ApprovalState.PENDING:
            # approvals.decide locks the row and refuses anything but a pending approval: decided once.
            self.flag(event, f"approval {approval_id} was already {current.state.value}")
        update: dict[str, Any] = {"state": target}
        if target in (ApprovalState.APPROVED, ApprovalState.REJECTED):
            update |= {"decided_by": event.actor, "decided_via": payload.get("via"), "decided_at": event.at}
        self.approvals[approval_id] = current.model_copy(update=update)

    def call(self, event: AuditEvent) -> None:
        payload = event.payload
        try:
            call = CallReplay(id=payload["call"], step=payload["step"], tier=payload["tier"], model=payload["model"],
                              tokens=payload.get("tokens", 0), cost_usd=payload.get("cost_usd", 0.0))
        except (KeyError, ValueError) as broken:
            self.flag(event, f"it does not describe a call ({broken})")
            return
        # Two workers racing on one prompt both log a call, but agent_calls keeps the first row (ON CONFLICT).
        self.calls.setdefault(call.id, call)

    def result(self) -> RunReplay:
        return self.out.model_copy(update={"steps": list(self.steps.values()),
                                           "approvals": list(self.approvals.values()),
                                           "calls": list(self.calls.values())})


def _state(value: Any) -> RunState | None:
    try:
        return RunState(value)
    except ValueError:
        return None


def _detail(payload: dict[str, Any]) -> str:
    parts = []
    for key in _DETAIL_KEYS:
        value = payload.get(key)
        if value in (None, ""):
            continue
        parts.append(f"attempt {value}" if key == "attempt" else f"via {value}" if key == "via" else str(value))
    return " · ".join(parts)


def fold(events: Iterable[AuditEvent], *, run_id: int) -> RunReplay:
    """The run as its events say it is. Pure and deterministic: events are taken in id order, others' ignored.

    Never raises on a strange log: what it cannot apply is in `flags` (an impossible transition, a
    recorded from/to the state machine does not give, a decision on an approval already decided).
    """
    state = _Fold(run_id)
    for event in sorted((e for e in events if e.run_id == run_id), key=lambda e: e.id):
        state.apply(event)
    return state.result()


# -- the comparison (pure) --------------------------------------------------------------------------

def _text(value: Any) -> str:
    # Enum members and the plain strings of an unvalidated row compare alike: StrEnum's str() is its value.
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


R = TypeVar("R")
L = TypeVar("L")


class _Differ:
    def __init__(self) -> None:
        self.found: list[Disagreement] = []

    def field(self, subject: str, name: str, table: Any, log: Any) -> None:
        if _text(table) != _text(log):
            self.found.append(Disagreement(subject=subject, field=name, table=_text(table), log=_text(log)))

    def missing(self, subject: str, *, in_table: bool) -> None:
        self.found.append(Disagreement(subject=subject, field="record",
                                       table="present" if in_table else "no row",
                                       log="no event" if in_table else "present"))

    def pairs(self, kind: str, rows: dict[Any, R], logged: dict[Any, L]) -> Iterator[tuple[str, R, L]]:
        """Each row with its replayed record, table order first; one present on one side only is reported."""
        for key in [*rows, *(k for k in logged if k not in rows)]:
            row, record, subject = rows.get(key), logged.get(key), f"{kind} {key}"
            if row is None or record is None:
                self.missing(subject, in_table=row is not None)
                continue
            yield subject, row, record


def compare(replay: RunReplay, *, run: Run | None, step_rows: Iterable[StepRecord],
            approval_rows: Iterable[Approval], call_rows: Iterable[AgentCall]) -> list[Disagreement]:
    """Every field where the rows and the replay differ, run first, then steps, approvals and calls."""
    differ = _Differ()
    subject = f"run #{replay.run_id}"
    if run is None:
        if replay.timeline:
            differ.missing(subject, in_table=False)
    elif replay.state is None:
        differ.missing(subject, in_table=True)
    else:
        differ.field(subject, "workflow", run.workflow, replay.workflow)
        differ.field(subject, "state", run.state, replay.state)
        differ.field(subject, "paused_from", run.paused_from, replay.paused_from)
        differ.field(subject, "reason", run.reason, replay.reason)
        differ.field(subject, "finished", run.finished_at is not None, replay.finished)

    for subject, row, step in differ.pairs("step", {r.name: r for r in step_rows},
                                           {st.name: st for st in replay.steps}):
        differ.field(subject, "state", row.state, step.state)
        differ.field(subject, "attempts", row.attempts, step.attempts)

    for subject, row, approval in differ.pairs("approval", {r.id: r for r in approval_rows},
                                               {a.id: a for a in replay.approvals}):
        differ.field(subject, "state", row.state, approval.state)
        differ.field(subject, "step", row.step, approval.step)
        differ.field(subject, "action digest", row.action_digest, approval.digest)
        differ.field(subject, "decided by", row.decided_by, approval.decided_by)
        differ.field(subject, "decided via", row.decided_via, approval.decided_via)

    for subject, row, call in differ.pairs("agent call", {r.id: r for r in call_rows},
                                           {c.id: c for c in replay.calls}):
        differ.field(subject, "step", row.step, call.step)
        differ.field(subject, "tier", row.tier, call.tier)
        differ.field(subject, "model", row.model, call.model)
        differ.field(subject, "tokens", row.input_tokens + row.output_tokens, call.tokens)
        if abs(float(row.cost_usd) - call.cost_usd) > _COST_TOLERANCE:
            differ.field(subject, "cost", f"${float(row.cost_usd):.6f}", f"${call.cost_usd:.6f}")
    return differ.found


# -- reading the record (I/O) -----------------------------------------------------------------------

def check(conn: Connection, run_id: int) -> ReplayReport:
    """Replay run `run_id` from its audit events and compare it with its rows. Raises NotFound if neither exists.

    Reads in the caller's transaction (`snapshot` gives it one view of both). Rows are read without
    validation, so a row changed behind the log's back to a state no code writes is reported, not refused.
    Verifying the chain reads the whole audit log, as the dashboard's overview does: fine at one-person scale.
    """
    events = audit.events(conn, run_id=run_id)
    row = conn.execute(RUN, (run_id,)).fetchone()
    if row is None and not events:
        raise NotFound("run", run_id)
    replay = fold(events, run_id=run_id)
    found = compare(
        replay,
        run=Run.model_construct(**row) if row else None,
        step_rows=[StepRecord.model_construct(**r) for r in conn.execute(STEPS_OF_RUN, (run_id,))],
        approval_rows=[Approval.model_construct(**r) for r in conn.execute(APPROVALS_OF_RUN, (run_id,))],
        call_rows=[AgentCall.model_construct(**r) for r in conn.execute(CALLS_OF_RUN, (run_id,))],
    )
    chain = audit.verify(conn)
    last = replay.last_event_id
    holds = chain.ok or last is None or (chain.first_broken_id is not None and chain.first_broken_id > last)
    return ReplayReport(replay=replay, disagreements=found, chain=chain, chain_holds=holds)


def snapshot(pool: ConnectionPool, run_id: int) -> ReplayReport:
    """`check` in one REPEATABLE READ transaction: a transition committed while it reads cannot show up in the
    rows but not the events (or the reverse) and pass for a disagreement. Raises NotFound."""
    with pool.connection() as conn, conn.transaction():
        conn.execute(SNAPSHOT)
        return check(conn, run_id)
