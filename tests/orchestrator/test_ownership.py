"""Run ownership: a worker whose run lock's session ends notices before its next outside action and stops, touching
nothing; the worker that takes the run over finishes it, and no email or charge happens twice (review defect 2)."""
from __future__ import annotations

import threading

import pytest
from structlog.testing import capture_logs

from connectors import Charge, SmtpEmailBackend
from orchestrator import Classification, Decision, Operations, RunState, engine
from orchestrator.errors import OwnershipLost
from orchestrator.jobs import recover_runs
from orchestrator.messages import Message, MessageKind
from orchestrator.ownership import RunLock, hold_run
from orchestrator.policy import Effect
from orchestrator.workflows import WORKFLOWS
from orchestrator.workflows.model import Step, Workflow
from tests.orchestrator.helpers import (
    OPERATOR,
    WINBACK,
    count,
    operations,
    pending_approval,
    run_state,
    seed,
    terminate_lock_holder,
)
from tests.standins.smtp import SmtpStandIn


def test_a_lock_whose_session_was_terminated_is_noticed_as_lost(services, db, database_url):
    with hold_run(database_url, 5) as lock:
        assert lock is not None
        lock.check()
        terminate_lock_holder(db, 5)
        with pytest.raises(OwnershipLost):
            lock.check()


@pytest.fixture
def smtp(services):
    with SmtpStandIn() as server:
        services.email.backend = SmtpEmailBackend(host=server.host, port=server.port)
        yield server


def test_a_worker_whose_lock_session_ends_mid_send_sends_nothing_more_and_the_next_worker_finishes(
    services, db, smtp, work
):
    """Before, the lock sat on a connection nobody looked at again: once PostgreSQL ended that session, recovery
    saw a free run, a second worker advanced it beside the first, and both sent the same emails and charges."""
    # Short enough for the second worker to wait out the first one's claim in process, long enough for the first
    # to finish the send it is in the middle of (its outcome is the server's: it may well be accepted).
    services.email.claims.seconds = 5
    seed(services, declining=None)
    ops = operations(services)
    ops.submit(OPERATOR, WINBACK)
    work()
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    services.stores.redis.flushdb()  # the two workers below are started by hand
    smtp.hold_for("chloe@example.com")
    outcome: dict[str, RunState] = {}

    def worker(name: str) -> None:
        outcome[name] = engine.advance(services, 1)

    with capture_logs() as logs:
        first = threading.Thread(target=worker, args=("first",))
        first.start()
        assert smtp.held.wait(60), "the first worker never reached the third recipient"
        terminate_lock_holder(db, 1)
        assert recover_runs(services) == [1], "recovery sees a run nobody holds"
        services.stores.redis.flushdb()
        second = threading.Thread(target=worker, args=("second",))
        second.start()
        smtp.release()  # the first worker's send in flight goes through; it must be its last
        first.join(60)
        second.join(120)
    assert outcome == {"first": RunState.RUNNING, "second": RunState.SUCCEEDED}
    assert [e["run_id"] for e in logs if e["event"] == "run.ownership_lost"] == [1]
    recipients = sorted(r for m in smtp.messages for r in m.rcpt_tos)
    assert recipients == ["ana@example.com", "ben@example.com", "chloe@example.com", "dev@example.com",
                          "eve@example.com"]
    assert count(db, "payments_ledger", "kind = 'charge' AND status = 'succeeded'") == 5
    assert count(db, "audit_events", "kind IN ('step.failed', 'step.compensated')") == 0
    assert count(db, "budget_calls", "state = 'released'") == 0
    assert run_state(db, 1) == "succeeded"


class Flow:
    def classify(self, text):
        return Classification(kind="lossy", workflow="lossy", confidence=1.0)


def test_a_step_that_loses_the_run_charges_nothing_marks_nothing_failed_and_undoes_nothing(services, db, monkeypatch):
    """The loss is found by the charge's claim itself (the fence), not by anything the step had to remember."""
    lose = {"times": 1}

    def charge(ctx):
        if lose["times"]:
            lose["times"] -= 1
            terminate_lock_holder(db, ctx.run.id)
        receipt = ctx.services.payments.execute(action=Charge(customer="c-ana", amount_cents=900),
                                                key=ctx.action_key("c-ana"))
        return {"key": receipt.key}

    def refund(ctx, result):
        return ctx.services.payments.compensate(key=ctx.action_key("c-ana"))

    flow = Workflow("lossy", "lossy", (Step("charge", Effect.CHARGE, charge, compensate=refund),))
    monkeypatch.setitem(WORKFLOWS, "lossy", flow)
    Operations(services, Flow()).submit(OPERATOR, "charge Ana")
    assert engine.advance(services, 1) is RunState.RUNNING
    assert services.payments.ledger("c-ana") == []
    assert run_state(db, 1) == "running"
    with db.connection() as conn:
        assert conn.execute("SELECT state FROM steps WHERE run_id = 1").fetchone()["state"] == "running"
    assert engine.advance(services, 1) is RunState.SUCCEEDED
    assert [(e["kind"], e["status"]) for e in services.payments.ledger("c-ana")] == [("charge", "succeeded")]


def test_a_worker_whose_run_is_taken_over_between_its_check_and_its_write_commits_nothing(
    services, db, monkeypatch
):
    """Before, the worker checked its lock on the lock's connection and then wrote on a pool connection: a lock
    lost in between let it finish the step a second time over the new owner's result, with a second audit event.
    Here the lock is lost just after the post-step check passes, and the new owner runs the run to its end
    before the first worker writes; the run's row names the new hold, so the first worker's write rolls back."""
    runs_of_step: list[int] = []
    armed = {"now": False}
    second: dict[str, RunState] = {}

    def note(ctx):
        runs_of_step.append(len(runs_of_step) + 1)
        armed["now"] = len(runs_of_step) == 1
        return {"attempt": len(runs_of_step)}

    checked = RunLock.check

    def check_then_lose(lock):
        checked(lock)
        if armed["now"]:
            armed["now"] = False
            terminate_lock_holder(db, lock.run_id)
            taker = threading.Thread(target=lambda: second.update(state=engine.advance(services, lock.run_id)))
            taker.start()
            taker.join(60)

    flow = Workflow("lossy", "lossy", (Step("note", Effect.READ, note),))
    monkeypatch.setitem(WORKFLOWS, "lossy", flow)
    monkeypatch.setattr(RunLock, "check", check_then_lose)
    Operations(services, Flow()).submit(OPERATOR, "note something")
    assert engine.advance(services, 1) is RunState.RUNNING
    assert second == {"state": RunState.SUCCEEDED} and runs_of_step == [1, 2]
    with db.connection() as conn:
        step = conn.execute("SELECT state, result FROM steps WHERE run_id = 1").fetchone()
    assert step == {"state": "succeeded", "result": {"attempt": 2}}
    assert count(db, "audit_events", "kind = 'step.succeeded'") == 1
    assert run_state(db, 1) == "succeeded"


def test_a_step_whose_run_was_taken_over_tells_and_records_nothing(services, db, monkeypatch):
    """Review finding: writes a step makes itself (a message to the operator with its audit event, a recorded
    event, a cancellation for a missing policy) did not check the run's owner, so a worker whose run another had
    taken over still posted and audited. Now they check it first, and the stale worker writes nothing."""
    second: dict[str, RunState] = {}
    first = {"now": True}

    def tell(ctx):
        if first["now"]:
            first["now"] = False
            terminate_lock_holder(db, ctx.run.id)
            taker = threading.Thread(target=lambda: second.update(state=engine.advance(services, ctx.run.id)))
            taker.start()
            taker.join(60)
        ctx.notify(Message(kind=MessageKind.STATUS, title="Heads up"), event="test.told", payload={},
                   dedupe=f"told:{len(second)}")
        return {}

    flow = Workflow("lossy", "lossy", (Step("tell", Effect.READ, tell),))
    monkeypatch.setitem(WORKFLOWS, "lossy", flow)
    Operations(services, Flow()).submit(OPERATOR, "tell me something")
    assert engine.advance(services, 1) is RunState.RUNNING
    assert second == {"state": RunState.SUCCEEDED}
    assert count(db, "audit_events", "kind = 'test.told'") == 1, "only the owner's message and event"
    assert count(db, "outbox", "message->>'title' = 'Heads up'") == 1
