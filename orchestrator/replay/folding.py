"""The fold (pure): a run's audit events in, its state out, by the run state machine (`runs.next_state`).

It follows steps, approvals and agent calls through their own states, so the same events always give the
same replay; an event it cannot apply is flagged, never skipped silently.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrator import runs
from orchestrator.approvals import ApprovalState
from orchestrator.audit import AuditEvent
from orchestrator.errors import InvalidTransition
from orchestrator.replay.model import ApprovalReplay, CallReplay, Flag, Moment, RunReplay, StepReplay
from orchestrator.runs import RunEvent, RunState
from orchestrator.steps import StepState

# The engine pauses a run as "worker" only when a step's outside system stayed down (engine._hold). Logs
# written before the engine appended `step.failed` show that step's failure only through this pause.
WORKER = "worker"
# The payload fields worth a glance in a timeline, in the order they read best.
_DETAIL_KEYS = ("step", "attempt", "approval", "via", "tier", "model", "customer", "reason", "error")


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
        if run_event in (RunEvent.FAIL, RunEvent.COMPENSATE, RunEvent.UNWIND) or (
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
