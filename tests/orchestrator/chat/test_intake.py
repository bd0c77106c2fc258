"""Intake: a request becomes an intent, a run and their audit events together, or nothing at all."""
import pytest

from orchestrator import MessageKind
from orchestrator.queue import queue
from tests.orchestrator.helpers import OPERATOR, STRANGER, WINBACK, count, operations


def test_request_writes_intent_run_and_audit_events_and_enqueues_the_run(services, db, redis):
    reply = operations(services).submit(OPERATOR, WINBACK + " budget $20 within 2 weeks")
    assert reply.kind is MessageKind.ACK and reply.run_id == 1
    with db.connection() as conn:
        intent = conn.execute("SELECT * FROM intents").fetchone()
        kinds = [r["kind"] for r in conn.execute("SELECT kind FROM audit_events ORDER BY id")]
    assert intent["kind"] == "winback_campaign" and float(intent["budget_usd"]) == 20.0
    assert (intent["deadline"] - intent["created_at"]).days in (13, 14)
    assert kinds == ["intent.created", "run.created"]
    assert queue(redis).count == 1


def test_intent_and_its_audit_event_commit_together_or_not_at_all(services, db, monkeypatch):
    """If anything in the intake transaction fails, neither the intent nor its audit event remains."""
    from orchestrator import runs

    def broken_create(*args, **kwargs):
        raise RuntimeError("database went away mid-transaction")

    monkeypatch.setattr(runs, "create", broken_create)
    with pytest.raises(RuntimeError):
        operations(services).submit(OPERATOR, WINBACK)
    assert count(db, "intents") == 0
    assert count(db, "audit_events") == 0


@pytest.mark.parametrize(("text", "reason"), [("   ", "empty"), ("x" * 2001, "2001 characters")])
def test_empty_or_overlong_request_is_refused_audited_and_not_queued(services, db, redis, text, reason):
    reply = operations(services).submit(OPERATOR, text)
    assert reply.kind is MessageKind.REFUSAL and reason in reply.title
    assert count(db, "intents") == 0
    assert count(db, "audit_events", "kind = 'request.invalid'") == 1
    assert queue(redis).count == 0


def test_request_it_does_not_understand_lists_what_it_can_do_and_queues_nothing(services, db, redis):
    reply = operations(services).handle_text(OPERATOR, "book me a flight to Lisbon")
    assert reply.kind is MessageKind.REFUSAL
    assert "nothing was queued" in reply.title
    assert any(f.label == "win-back campaign" for s in reply.sections for f in s.facts)
    assert count(db, "intents") == 0 and queue(redis).count == 0
    assert count(db, "audit_events", "kind = 'request.not_understood'") == 1


def test_stranger_is_refused_politely_and_the_attempt_is_audited(services, db, redis):
    reply = operations(services).handle_text(STRANGER, WINBACK)
    assert reply.kind is MessageKind.REFUSAL and "only this workspace's operator" in reply.title
    assert count(db, "intents") == 0 and queue(redis).count == 0
    with db.connection() as conn:
        event = conn.execute("SELECT * FROM audit_events WHERE kind = 'access.refused'").fetchone()
    assert event["actor"] == "telegram:999"


def test_same_delivery_twice_makes_one_intent(services, db, redis):
    ops = operations(services)
    first = ops.submit(OPERATOR, WINBACK, dedupe_key="slack:Ev123")
    second = ops.submit(OPERATOR, WINBACK, dedupe_key="slack:Ev123")
    assert first.kind is MessageKind.ACK and "Already on it" in second.title
    assert count(db, "intents") == 1 and queue(redis).count == 1


def test_command_word_without_its_argument_is_treated_as_a_request_not_a_crash(services, db):
    reply = operations(services).handle_text(OPERATOR, "status of my tax return please")
    assert reply.kind is MessageKind.REFUSAL
    assert count(db, "runs") == 0


def test_help_answers_anyone_without_touching_state(services, db):
    reply = operations(services).handle_text(STRANGER, "help")
    assert reply.kind is MessageKind.HELP
    assert count(db, "audit_events") == 0


def test_unsure_router_offers_the_closest_kinds_as_buttons_and_a_button_starts_that_kind(services, db, redis):
    """Below the threshold opsos does not guess; the operator's pick starts the kept request as that kind."""
    from orchestrator import Classification

    class Unsure:
        def classify(self, text):
            return Classification(kind=None, confidence=0.2, closest=["winback_campaign", "content_post"],
                                  alternatives=[("winback_campaign", "winback"), ("content_post", "content_post")])

    from orchestrator import Operations

    ops = Operations(services, Unsure())
    reply = ops.handle_text(OPERATOR, "bring the old readers back somehow")
    assert reply.kind is MessageKind.REFUSAL and count(db, "intents") == 0
    assert [a.label for a in reply.actions] == ["Did you mean: winback campaign?", "Did you mean: content post?"]
    assert all(len(a.value.encode()) <= 64 for a in reply.actions)
    started = ops.handle_text(OPERATOR, reply.actions[0].value.replace(":", " ", 1))
    assert started.kind is MessageKind.ACK
    with db.connection() as conn:
        intent = conn.execute("SELECT request, kind FROM intents").fetchone()
    assert intent == {"request": "bring the old readers back somehow", "kind": "winback_campaign"}
    again = ops.handle_text(OPERATOR, reply.actions[0].value.replace(":", " ", 1))
    assert "Already on it" in again.title and count(db, "intents") == 1


def test_expired_suggestion_is_answered_not_guessed(services, db, redis):
    reply = operations(services).handle_text(OPERATOR, "choose 0123456789:0")
    assert "expired" in reply.title and count(db, "intents") == 0


def test_near_tie_between_opposite_kinds_is_asked_not_guessed(services, db, redis):
    """The embedding model scores "pause" and "resume" almost alike here: opsos offers both instead of picking one."""
    reply = operations(services).handle_text(OPERATOR, "pause Ben Okafor's access")
    assert reply.kind is MessageKind.REFUSAL and count(db, "intents") == 0
    assert sorted(a.label for a in reply.actions) == ["Did you mean: account pause?", "Did you mean: account resume?"]
