"""Approvals: decided once, by an operator, bound to the exact action, expiring into a visible wait."""
from datetime import timedelta

from orchestrator import Decision, MessageKind, approvals
from orchestrator.delivery.copies import ended_as
from orchestrator.outbox import Ending
from tests.concurrency import at_once
from tests.orchestrator.helpers import (
    OPERATOR,
    STRANGER,
    WINBACK,
    count,
    operations,
    pending_approval,
    run_state,
    seed,
    to_approval,
)


def _to_approval(services, work) -> str:
    seed(services)
    return to_approval(services, work)[1]


def test_approval_request_reaches_the_outbox_with_three_buttons(services, db, work):
    approval_id = _to_approval(services, work)
    with db.connection() as conn:
        item = conn.execute("SELECT * FROM outbox WHERE kind = 'approval_request'").fetchone()
    assert item["approval_id"] == approval_id
    values = [a["value"] for a in item["message"]["actions"]]
    assert values == [f"approve:{approval_id}", f"reject:{approval_id}", f"why:{approval_id}"]
    assert all(len(v.encode()) <= 64 for v in values)


def test_second_click_on_an_approval_changes_nothing(services, db, work):
    approval_id = _to_approval(services, work)
    ops = operations(services)
    first = ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    events_after_first = count(db, "audit_events")
    second = ops.decide(OPERATOR, approval_id, Decision.REJECTED)
    assert first.changed and not second.changed
    assert "already approved by console:operator" in second.reply.title
    assert count(db, "audit_events") == events_after_first
    assert count(db, "approvals", "state = 'approved'") == 1


def test_two_clicks_at_the_same_moment_record_one_decision(services, db, work):
    approval_id = _to_approval(services, work)
    ops = operations(services)
    results = at_once([lambda d=d: ops.decide(OPERATOR, approval_id, d)
                       for d in [Decision.APPROVED, Decision.REJECTED] * 2])
    # The winning decision's twin is the same operator's repeat, answered as done; nothing is recorded twice.
    assert sum(r.changed and not r.repeat for r in results) == 1
    assert sum(not r.changed for r in results) == 2
    assert count(db, "audit_events", "kind IN ('approval.approved', 'approval.rejected')") == 1


def test_the_same_operators_same_decision_again_is_answered_as_done(services, db, work):
    """A front end retries a decide whose transaction committed before a store error lost its answer: that repeat
    used to be told "already approved by" the operator themself. Every front end now gets the decision's own
    answer for it, and nothing is recorded again."""
    approval_id = _to_approval(services, work)
    ops = operations(services)
    first = ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    again = ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    assert again.changed and again.repeat and again.reply == first.reply
    assert count(db, "audit_events", "kind = 'approval.approved'") == 1


def test_another_operators_click_on_a_decided_approval_is_told_it_was_decided(services, db, work):
    approval_id = _to_approval(services, work)
    other = OPERATOR.model_copy(update={"identity": "console:partner"})
    services.policy = services.policy.model_copy(update={"operators": services.policy.operators | {other.identity}})
    ops = operations(services)
    ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    second = ops.decide(other, approval_id, Decision.APPROVED)
    assert not second.changed and "already approved by console:operator" in second.reply.title


def test_stranger_pressing_approve_is_refused_and_audited(services, db, work):
    approval_id = _to_approval(services, work)
    outcome = operations(services).decide(STRANGER, approval_id, Decision.APPROVED)
    assert outcome.reply.kind is MessageKind.REFUSAL and not outcome.changed
    assert count(db, "approvals", "state = 'pending'") == 1
    assert count(db, "audit_events", "kind = 'access.refused' AND actor = 'telegram:999'") == 1


def test_approval_that_names_nothing_gets_an_answer(services, db):
    outcome = operations(services).decide(OPERATOR, "a0000000000", Decision.APPROVED)
    assert outcome.reply.kind is MessageKind.REFUSAL and "does not exist" in outcome.reply.title


def test_reject_cancels_the_run_and_sends_nothing(services, db, work, settings):
    approval_id = _to_approval(services, work)
    operations(services).decide(OPERATOR, approval_id, Decision.REJECTED)
    work()
    assert run_state(db, 1) == "cancelled"
    assert not list(settings.outbox_email_dir.glob("*.eml"))


def test_cancelling_a_run_withdraws_its_approval_everywhere(services, db, work):
    """Proves a cancelled run leaves no live buttons: its approval is void, audited, every copy is queued an edit
    saying so, and a late click is told the run ended rather than shown an error."""
    seed(services)
    ops, approval_id = to_approval(services, work)
    ops.handle_text(OPERATOR, "cancel 1")
    with db.connection() as conn:
        state = conn.execute("SELECT state FROM approvals WHERE id = %s", (approval_id,)).fetchone()["state"]
        ending = conn.execute("SELECT ending FROM outbox WHERE kind = 'edit'").fetchone()["ending"]
        record = approvals.get(conn, approval_id)
    assert state == "void" and count(db, "audit_events", "kind = 'approval.void'") == 1
    # The edit keeps how the approval ended; delivery words it from the record when it goes out.
    assert ending == {"state": "void", "run_outcome": "cancelled"}
    worded = ended_as(record, Ending.model_validate(ending))
    assert worded.title.startswith("Withdrawn:") and "Run #1 was cancelled" in worded.text
    late = ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    assert late.reply.title == "Nothing changed: run #1 was cancelled; there is nothing left to decide."
    assert run_state(db, 1) == "cancelled"


def test_changed_action_voids_the_old_approval_and_asks_again(services, db, work):
    """The approval is bound to the rendered emails: edit the draft and the old approval no longer applies."""
    old = _to_approval(services, work)
    with db.connection() as conn:
        conn.execute("UPDATE steps SET result = jsonb_set(result, '{subject}', '\"Come back, {first_name}\"')"
                     " WHERE run_id = 1 AND name = 'draft_campaign'")
    ops = operations(services)
    ops.handle_text(OPERATOR, "resume 1")
    work()
    new = pending_approval(db, 1)
    assert new != old
    with db.connection() as conn:
        assert conn.execute("SELECT state FROM approvals WHERE id = %s", (old,)).fetchone()["state"] == "void"
    stale = ops.decide(OPERATOR, old, Decision.APPROVED)
    assert not stale.changed and "action changed" in stale.reply.title


def test_expired_approval_leaves_the_run_waiting_and_says_so(services, db, work):
    approval_id = _to_approval(services, work)
    start = services.now()
    services.clock = lambda: start + services.settings.approval_ttl + timedelta(minutes=1)
    ops = operations(services)
    outcome = ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    assert not outcome.changed and "expired" in outcome.reply.title
    assert run_state(db, 1) == "awaiting_approval"
    assert count(db, "approvals", "state = 'expired'") == 1
    assert count(db, "audit_events", "kind = 'approval.expired'") == 1
    status = ops.status().plain_text()
    assert "approval expired" in status
    ops.handle_text(OPERATOR, "resume 1")
    work()
    assert pending_approval(db, 1) != approval_id


def test_why_explains_the_intent_the_data_and_the_model(services, work):
    approval_id = _to_approval(services, work)
    why = operations(services).handle_text(OPERATOR, f"why {approval_id}").plain_text()
    assert WINBACK in why
    assert "crm:c-ana" in why and "offline-template-drafter" in why
