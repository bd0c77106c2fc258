"""The workflow model: a workflow is named steps, each an agent call or a connector action with its compensation."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.policy import Effect
from orchestrator.steps import StepRecord, StepState
from orchestrator.workflows.context import StepContext

StepFn = Callable[[StepContext], dict[str, Any]]
CompensateFn = Callable[[StepContext, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    name: str
    effect: Effect
    run: StepFn
    compensate: CompensateFn | None = None
    title: str = ""
    summarise: Callable[[dict[str, Any]], str] | None = None


@dataclass(frozen=True)
class Workflow:
    name: str
    title: str
    steps: tuple[Step, ...]
    describe: str = ""
    needs: frozenset[str] = field(default_factory=frozenset)
    # The RQ queue its runs start on: `slow` for batch work (a month of books), so it never delays the
    # operator's other requests on `default`. A run the operator just unblocked resumes on `interactive`.
    queue: str = "default"
    # The outside system whose events start it ("stripe"): never offered in chat, since no request in words makes one.
    triggered_by: str = ""

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


def next_step(workflow: Workflow, records: dict[str, StepRecord]) -> Step | None:
    """The first step not yet succeeded (pure): a running one is re-run, its actions being idempotent."""
    for step in workflow.steps:
        record = records.get(step.name)
        if record is None or record.state is not StepState.SUCCEEDED:
            return step
    return None
