"""Memory in chat: remember and recall with sources, forget behind an approval, and "why?" from the index."""
import pytest

from orchestrator import Decision, MessageKind, audit
from tests.orchestrator.helpers import (
    OPERATOR,
    WINBACK,
    approve_and_finish,
    count,
    operations,
    pending_approval,
    run_state,
    seed,
)


def test_remembered_fact_is_recalled_with_its_source_and_audited(services, db):
    ops = operations(services)
    reply = ops.handle_text(OPERATOR, "remember Ana Souza: prefers email over phone, reads on Sundays")
    assert reply.title.startswith("Remembered: memory #")
    recalled = ops.handle_text(OPERATOR, "recall how does Ana like to be contacted").plain_text()
    assert "prefers email over phone" in recalled and "chat:console" in recalled
    assert count(db, "audit_events", "kind = 'memory.remembered'") == 1


def test_remember_whose_audit_event_fails_keeps_no_memory(services, db, monkeypatch):
    """Proves remember is one transaction: a crash writing its audit event leaves no unaudited memory."""
    def crash(*args, **kwargs):
        raise RuntimeError("the audit write failed")

    monkeypatch.setattr(audit, "append", crash)
    with pytest.raises(RuntimeError):
        operations(services).handle_text(OPERATOR, "remember Ana Souza: prefers email over phone")
    assert count(db, "memories") == 0 and count(db, "memory_links") == 0


def test_forget_asks_for_approval_then_leaves_a_tombstone_and_an_audit_event(services, db, work):
    ops = operations(services)
    ops.handle_text(OPERATOR, "remember Ben Okafor: card on file ends 4242")
    with db.connection() as conn:
        memory_id = conn.execute("SELECT id FROM memories").fetchone()["id"]
    accepted = ops.handle_text(OPERATOR, f"forget {memory_id}")
    assert accepted.kind is MessageKind.ACK
    work()
    run_id = accepted.run_id
    assert run_state(db, run_id) == "awaiting_approval"
    assert count(db, "memories", "forgotten_at IS NULL") == 1, "nothing is forgotten before the approval"
    ops.decide(OPERATOR, pending_approval(db, run_id), Decision.APPROVED)
    work()
    assert run_state(db, run_id) == "succeeded"
    with db.connection() as conn:
        row = conn.execute("SELECT text, forgotten_by, embedding FROM memories WHERE id = %s", (memory_id,)).fetchone()
        event = conn.execute("SELECT payload FROM audit_events WHERE kind = 'memory.forgotten'").fetchone()
    assert "4242" not in row["text"] and row["forgotten_by"] == "console:operator" and row["embedding"] is None
    assert event["payload"]["memory"] == memory_id and "4242" not in str(event["payload"])
    assert "4242" not in ops.handle_text(OPERATOR, "recall Ben's card").plain_text()


def test_why_did_we_email_ana_is_answered_from_data(services, db, work):
    """The chain: the email action, its step, run and intent, the approval and who gave it, the memory cited."""
    seed(services, declining=None)
    ops = operations(services)
    ops.handle_text(OPERATOR, "remember lapsed subscribers: most left over price, not content")
    approve_and_finish(services, work, ops)
    answer = ops.handle_text(OPERATOR, "why did we email Ana on the 3rd?")
    text = answer.plain_text()
    assert answer.kind is MessageKind.EXPLANATION, text
    assert "email.send to ana@example.com" in text
    assert "run:1:send_emails" in text
    assert f"“{WINBACK}”" in text
    assert "approved by console:operator via console" in text
    assert "most left over price" in text
    assert "approval.approved" in text


def test_why_about_nothing_known_says_so(services, db):
    reply = operations(services).handle_text(OPERATOR, "why did we email Zed?")
    assert reply.kind is MessageKind.REFUSAL and "no action matching" in reply.title
