"""The engine on a real RQ worker: the win-back workflow end to end, its payment failure path, its records."""
from orchestrator import MessageKind, agent_calls
from tests.orchestrator.helpers import (
    OPERATOR,
    WINBACK,
    approve_and_finish,
    break_winback_at_the_end,
    count,
    operations,
    run_state,
    seed,
)


def _outbox_kinds(db) -> list[str]:
    with db.connection() as conn:
        return [r["kind"] for r in conn.execute("SELECT kind FROM outbox ORDER BY id")]


def test_approved_run_emails_everyone_once_and_reports(services, db, work, settings):
    seed(services, declining=None)
    approve_and_finish(services, work)
    assert run_state(db, 1) == "succeeded"
    assert len(list(settings.outbox_email_dir.glob("*.eml"))) == 5
    # The edit takes the buttons off the approval request once it is decided.
    assert _outbox_kinds(db) == ["approval_request", "edit", "report"]
    with db.connection() as conn:
        report = conn.execute("SELECT message FROM outbox WHERE kind = 'report'").fetchone()["message"]
    text = "\n".join(f["value"] for s in report["sections"] for f in s["facts"])
    assert "5 emails sent" in text and "5 renewed" in text and "approved by console:operator" in text


def test_declined_payment_is_retried_reported_and_compensated(services, db, work):
    seed(services, declining="c-eve")
    approve_and_finish(services, work)
    ledger = services.payments.ledger("c-eve")
    assert [e["status"] for e in ledger] == ["failed"] * services.payment_retry.attempts
    assert services.crm.get("c-eve").access == "paused"
    assert services.crm.get("c-ana").access == "active"
    assert _outbox_kinds(db) == ["approval_request", "edit", "alert", "report"]
    assert count(db, "audit_events", "kind = 'payment.attempt_failed'") == services.payment_retry.attempts
    assert count(db, "audit_events", "kind = 'payment.failed'") == 1
    assert run_state(db, 1) == "succeeded"


def test_every_transition_wrote_its_audit_event_and_the_chain_holds(services, db, work):
    from orchestrator import audit

    seed(services)
    approve_and_finish(services, work)
    with db.connection() as conn:
        kinds = [e.kind for e in audit.events(conn, run_id=1)]
        assert audit.verify(conn).ok
    for expected in ["run.created", "run.start", "run.await_approval", "approval.requested", "approval.approved",
                     "run.approve", "agent.called", "run.succeed"]:
        assert expected in kinds


def test_agent_call_is_stored_with_tier_model_prompt_hash_and_usage(services, db, work):
    seed(services)
    approve_and_finish(services, work)
    with db.connection() as conn:
        calls = agent_calls.for_run(conn, 1)
    assert len(calls) == 1
    call = calls[0]
    assert (call.step, call.tier, call.model) == ("draft_campaign", "draft", "offline-template-drafter")
    assert len(call.prompt_hash) == 64 and call.input_tokens > 0 and call.output_tokens > 0
    assert call.output["offer"] == "30% off for 3 months"


def test_rerun_of_a_step_reuses_the_stored_agent_call(services, db, work, monkeypatch):
    """A crash after the model answered but before the step was marked done must not pay for the call twice."""
    seed(services)
    operations(services).submit(OPERATOR, WINBACK)
    work()
    with db.connection() as conn:
        conn.execute("UPDATE steps SET state = 'running' WHERE run_id = 1 AND name = 'draft_campaign'")
        conn.execute("UPDATE runs SET state = 'running' WHERE id = 1")
    calls = []
    original = type(services.models.draft)._generate

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(services.models.draft), "_generate", counting)
    from orchestrator import engine

    engine.advance(services, 1)
    assert calls == []
    assert count(db, "agent_calls") == 1


def test_failing_step_compensates_finished_steps_and_tells_the_operator(services, db, work, monkeypatch):
    """A step that breaks after renewals were collected refunds them, newest first, and ends `compensated`."""
    break_winback_at_the_end(monkeypatch)
    seed(services, declining=None)
    approve_and_finish(services, work)
    assert run_state(db, 1) == "compensated"
    refunds = [e for e in services.payments.ledger() if e["kind"] == "refund"]
    assert len(refunds) == 5
    with db.connection() as conn:
        alert = conn.execute("SELECT message FROM outbox WHERE kind = 'alert'").fetchone()["message"]
    assert "sync_crm failed" in alert["title"] and "refunded" in alert["text"]


def test_pause_stops_a_run_and_resume_finishes_it(services, db, work):
    seed(services, declining=None)
    ops = operations(services)
    ops.submit(OPERATOR, WINBACK)
    reply = ops.handle_text(OPERATOR, "pause 1")
    assert reply.kind is MessageKind.NOTICE and run_state(db, 1) == "paused"
    work()
    assert run_state(db, 1) == "paused" and count(db, "steps") == 0
    ops.handle_text(OPERATOR, "resume 1")
    work()
    assert run_state(db, 1) == "awaiting_approval"
    cancelled = ops.handle_text(OPERATOR, "cancel 1")
    assert "cancelled" in cancelled.title and run_state(db, 1) == "cancelled"
    again = ops.handle_text(OPERATOR, "resume 1")
    assert again.kind is MessageKind.REFUSAL and "cannot resume" in again.title


def test_recovery_enqueues_a_run_nobody_holds(services, db, redis):
    from orchestrator.jobs import recover_runs
    from orchestrator.queue import queue

    seed(services)
    operations(services).submit(OPERATOR, WINBACK)
    queue(redis).empty()
    assert recover_runs(services) == [1]
    assert queue(redis).count == 1


def test_step_that_breaks_half_way_has_its_own_charges_refunded(services, db, work, monkeypatch):
    """Two renewals were charged before the payments API broke: both are refunded, the run ends compensated."""
    from connectors import SandboxPayments

    seed(services, declining=None)
    real = SandboxPayments.execute
    calls = []

    def flaky(self, *, action, key):
        calls.append(key)
        if len(calls) == 3:
            raise RuntimeError("payments API answered 500 with a stack trace")
        return real(self, action=action, key=key)

    monkeypatch.setattr(SandboxPayments, "execute", flaky)
    approve_and_finish(services, work)
    assert run_state(db, 1) == "compensated"
    ledger = services.payments.ledger()
    assert sum(e["kind"] == "charge" for e in ledger) == 2
    assert sum(e["kind"] == "refund" for e in ledger) == 2


def test_run_cancelled_while_its_step_runs_stays_cancelled_when_the_step_fails(services, db, work, monkeypatch):
    """The operator's cancel wins: the failing step is recorded, no transition is forced on a cancelled run."""
    from orchestrator.workflows import WORKFLOWS, winback
    from orchestrator.workflows.model import Step

    seed(services, declining=None)
    ops = operations(services)

    def cancel_then_break(ctx):
        ops.handle_text(OPERATOR, f"cancel {ctx.run.id}")
        raise RuntimeError("the CRM went away")

    breaking = winback.WINBACK.__class__(
        name="winback", title="win-back campaign", describe="",
        steps=(Step("select_audience", winback.Effect.READ, cancel_then_break),),
    )
    monkeypatch.setitem(WORKFLOWS, "winback", breaking)
    ops.submit(OPERATOR, WINBACK)
    work()
    assert run_state(db, 1) == "cancelled"
    with db.connection() as conn:
        step = conn.execute("SELECT state, error FROM steps WHERE run_id = 1").fetchone()
    assert step["state"] == "failed" and "CRM went away" in step["error"]
