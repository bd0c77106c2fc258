"""A model call is an outside action: a worker that lost its run makes none, reserves nothing, releases nothing."""
from __future__ import annotations

import dataclasses

from orchestrator import RunState, engine
from orchestrator.workflows import WORKFLOWS, winback
from tests.orchestrator.helpers import OPERATOR, WINBACK, count, operations, seed, terminate_lock_holder


def test_a_step_whose_run_was_lost_calls_no_model_and_touches_no_reservation(services, db, monkeypatch):
    """Before, nothing checked the lock before a model call: a worker that had lost its run called the model and
    released open reservations of the step (`release_abandoned`) — the new owner's call in flight among them."""
    lose = {"times": 1}
    draft = next(s for s in winback.WINBACK.steps if s.name == "draft_campaign")

    def lose_then_draft(ctx):
        if lose["times"]:
            lose["times"] -= 1
            terminate_lock_holder(db, ctx.run.id)
        return draft.run(ctx)

    steps = tuple(dataclasses.replace(s, run=lose_then_draft) if s is draft else s for s in winback.WINBACK.steps)
    monkeypatch.setitem(WORKFLOWS, "winback", dataclasses.replace(winback.WINBACK, steps=steps))
    seed(services, declining=None)
    operations(services).submit(OPERATOR, WINBACK)
    services.stores.redis.flushdb()  # advanced by hand below
    assert engine.advance(services, 1) is RunState.RUNNING
    assert count(db, "budget_calls") == 0 and count(db, "audit_events", "kind = 'agent.called'") == 0
    assert count(db, "audit_events", "kind = 'step.failed'") == 0
    assert engine.advance(services, 1) is RunState.AWAITING_APPROVAL
    assert count(db, "budget_calls", "state = 'settled'") == 1 and count(db, "budget_calls", "state = 'released'") == 0
