"""What replay rebuilds from a run's audit events, and what it reports: the replayed run, flags, disagreements."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, computed_field

from orchestrator.anchors import AnchorReport
from orchestrator.approvals import ApprovalState
from orchestrator.runs import RunState
from orchestrator.steps import StepState


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
    chain: AnchorReport
    # True when verification got past the last event the replay used: a break after it does not touch them.
    chain_holds: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def agrees(self) -> bool:
        return not self.disagreements and not self.replay.flags and self.chain_holds


# -- the fold (pure) --------------------------------------------------------------------------------
