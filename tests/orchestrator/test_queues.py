"""Which RQ queue a run starts on: batch workflows on `slow`, so they never hold up the operator's other requests."""
from __future__ import annotations

import pytest

from orchestrator import Classification, Operations
from orchestrator.jobs import recover_runs
from orchestrator.queue import queue
from orchestrator.workflows import WORKFLOWS
from tests.orchestrator.helpers import OPERATOR


class Fixed:
    def __init__(self, workflow: str) -> None:
        self.workflow = workflow

    def classify(self, text):
        return Classification(kind=self.workflow, workflow=self.workflow, confidence=1.0)


@pytest.mark.parametrize(("workflow", "expected"), [
    ("bookkeeping_summary", "slow"),
    ("winback", "default"),
    ("outreach_email", "default"),
])
def test_a_run_starts_on_its_workflows_queue_and_recovery_keeps_it_there(services, redis, workflow, expected):
    """Proves `slow` is used: the request's job is on the workflow's queue, and a lost job is re-enqueued there."""
    assert WORKFLOWS[workflow].queue == expected
    Operations(services, Fixed(workflow)).submit(OPERATOR, "do the thing for March")
    counts = {name: queue(redis, name).count for name in ("interactive", "default", "slow")}
    assert counts == {"interactive": 0, "default": 0, "slow": 0, expected: 1}
    redis.flushdb()  # the job is lost with Redis; the run is safe in PostgreSQL
    assert recover_runs(services) == [1]
    assert queue(redis, expected).count == 1


def test_recovery_does_not_pile_up_jobs_for_a_run_whose_job_still_waits(services, redis):
    """Before, every recovery pass (each minute) enqueued one more job per queued run while the workers were busy."""
    Operations(services, Fixed("winback")).submit(OPERATOR, "win them back")
    for _ in range(3):
        assert recover_runs(services) == []
    assert queue(redis, "default").count == 1
