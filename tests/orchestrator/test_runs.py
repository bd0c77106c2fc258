"""The run state machine, as pure logic: every allowed edge, and the refused ones."""
import pytest

from orchestrator.errors import InvalidTransition
from orchestrator.runs import RunEvent, RunState, next_state

ALLOWED = [
    (RunState.QUEUED, RunEvent.START, RunState.RUNNING),
    (RunState.RUNNING, RunEvent.AWAIT_APPROVAL, RunState.AWAITING_APPROVAL),
    (RunState.AWAITING_APPROVAL, RunEvent.APPROVE, RunState.RUNNING),
    (RunState.AWAITING_APPROVAL, RunEvent.REJECT, RunState.CANCELLED),
    (RunState.RUNNING, RunEvent.SUCCEED, RunState.SUCCEEDED),
    (RunState.RUNNING, RunEvent.FAIL, RunState.FAILED),
    (RunState.RUNNING, RunEvent.COMPENSATE, RunState.COMPENSATED),
    (RunState.QUEUED, RunEvent.PAUSE, RunState.PAUSED),
    (RunState.RUNNING, RunEvent.PAUSE, RunState.PAUSED),
    (RunState.AWAITING_APPROVAL, RunEvent.PAUSE, RunState.PAUSED),
    (RunState.PAUSED, RunEvent.CANCEL, RunState.CANCELLED),
    (RunState.RUNNING, RunEvent.CANCEL, RunState.CANCELLED),
]


@pytest.mark.parametrize(("state", "event", "target"), ALLOWED)
def test_allowed_transition_reaches_its_state(state, event, target):
    assert next_state(state, event) is target


@pytest.mark.parametrize("paused_from", [RunState.QUEUED, RunState.RUNNING, RunState.AWAITING_APPROVAL])
def test_resume_returns_to_the_state_the_run_was_paused_from(paused_from):
    assert next_state(RunState.PAUSED, RunEvent.RESUME, paused_from=paused_from) is paused_from


@pytest.mark.parametrize("finished", [RunState.SUCCEEDED, RunState.FAILED, RunState.COMPENSATED, RunState.CANCELLED])
@pytest.mark.parametrize("event", list(RunEvent))
def test_a_finished_run_accepts_no_event(finished, event):
    with pytest.raises(InvalidTransition):
        next_state(finished, event)


@pytest.mark.parametrize(("state", "event"), [
    (RunState.QUEUED, RunEvent.SUCCEED),
    (RunState.QUEUED, RunEvent.APPROVE),
    (RunState.RUNNING, RunEvent.APPROVE),
    (RunState.RUNNING, RunEvent.RESUME),
    (RunState.AWAITING_APPROVAL, RunEvent.SUCCEED),
    (RunState.PAUSED, RunEvent.START),
])
def test_an_out_of_order_event_is_refused_with_both_names(state, event):
    with pytest.raises(InvalidTransition) as error:
        next_state(state, event)
    assert state.value in str(error.value) and event.value in str(error.value)


@pytest.mark.parametrize(("state", "event", "target"), [
    (RunState.RUNNING, RunEvent.UNWIND, RunState.COMPENSATING),
    (RunState.COMPENSATING, RunEvent.COMPENSATE, RunState.COMPENSATED),
    (RunState.COMPENSATING, RunEvent.FAIL, RunState.FAILED),
])
def test_compensating_is_a_state_of_its_own(state, event, target):
    assert next_state(state, event) is target


@pytest.mark.parametrize("event", [RunEvent.PAUSE, RunEvent.CANCEL, RunEvent.START, RunEvent.SUCCEED])
def test_an_undoing_under_way_is_neither_paused_cancelled_nor_run_forward(event):
    """Half an undoing is worse than either end: the operator's pause or cancel waits until it is done."""
    with pytest.raises(InvalidTransition):
        next_state(RunState.COMPENSATING, event)
