"""`next_step`, table-driven: the first step of a workflow not yet succeeded, whatever state the others are in."""
import pytest

from orchestrator.policy import Effect
from orchestrator.steps import StepRecord, StepState
from orchestrator.workflows.model import Step, Workflow, next_step

STEPS = ("understand", "propose", "execute")
WORKFLOW = Workflow("w", "a workflow", tuple(Step(name, Effect.READ, lambda ctx: {}) for name in STEPS))


def _records(**states: StepState) -> dict[str, StepRecord]:
    return {name: StepRecord(run_id=1, name=name, position=STEPS.index(name) if name in STEPS else 99, state=state,
                             attempts=1, idempotency_key=f"run:1:{name}", result=None, error=None, started_at=None,
                             finished_at=None)
            for name, state in states.items()}


S = StepState


@pytest.mark.parametrize(("records", "expected"), [
    pytest.param({}, "understand", id="nothing ran yet"),
    pytest.param(_records(understand=S.SUCCEEDED), "propose", id="after the first succeeded"),
    pytest.param(_records(understand=S.RUNNING), "understand", id="a running step is run again"),
    pytest.param(_records(understand=S.SUCCEEDED, propose=S.WAITING), "propose", id="a waiting step is next"),
    pytest.param(_records(understand=S.SUCCEEDED, propose=S.FAILED), "propose", id="a failed step is next"),
    pytest.param(_records(understand=S.COMPENSATED), "understand", id="a compensated step is not succeeded"),
    pytest.param(_records(understand=S.SUCCEEDED, propose=S.SUCCEEDED), "execute", id="the last one"),
    pytest.param(_records(propose=S.SUCCEEDED, execute=S.SUCCEEDED), "understand",
                 id="a gap before later successes is filled first"),
    pytest.param(_records(understand=S.SUCCEEDED, propose=S.SUCCEEDED, execute=S.SUCCEEDED), None,
                 id="all succeeded"),
    pytest.param(_records(understand=S.SUCCEEDED, propose=S.SUCCEEDED, execute=S.SUCCEEDED, gone=S.RUNNING), None,
                 id="a record of a step the workflow no longer has is ignored"),
])
def test_next_step(records: dict[str, StepRecord], expected: str | None) -> None:
    step = next_step(WORKFLOW, records)
    assert (step.name if step else None) == expected


def test_a_workflow_without_steps_has_no_next_step() -> None:
    assert next_step(Workflow("empty", "nothing", ()), {}) is None
