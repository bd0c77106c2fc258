"""Answering a question: after opsos asks for a missing parameter, the operator's next plain message is the answer.

Real router, real worker, offline tier. The asked request is "refund a customer's last payment": the
router places it confidently, and it names no customer, so the refund workflow asks "Which customer?".
"""
from datetime import timedelta

from connectors import Charge
from orchestrator import MessageKind, intents
from orchestrator.chat.operations import Requester
from orchestrator.chat.routing import is_bare_value
from tests.orchestrator.helpers import OPERATOR, count, operations, run_state, seed

ASK = "refund a customer's last payment"


def asked(services, work):
    """Seed a refundable charge of Ana's, make the request that lacks the customer, and let the run ask."""
    seed(services, declining=None)
    services.payments.execute(action=Charge(customer="c-ana", amount_cents=1200), key="sub:c-ana:1")
    ops = operations(services)
    ops.handle_text(OPERATOR, ASK)
    work()
    return ops


def outbox(db, kind: str) -> list[dict]:
    with db.connection() as conn:
        rows = conn.execute("SELECT message FROM outbox WHERE kind = %s ORDER BY id", (kind,)).fetchall()
    return [r["message"] for r in rows]


def intent(db, intent_id: int) -> dict:
    with db.connection() as conn:
        return conn.execute("SELECT kind, request, params FROM intents WHERE id = %s", (intent_id,)).fetchone()


def test_the_question_says_a_reply_is_enough(services, db, work):
    """The ask tells the operator to just reply with the value, and within how long."""
    asked(services, work)
    assert run_state(db, 1) == "cancelled"
    [question] = outbox(db, "notice")
    assert question["title"].startswith("Which customer?")
    assert "Just reply with the customer (e.g. “ana@example.com”) within the hour" in question["text"]


def test_reply_with_the_missing_customer_starts_the_same_kind_and_reaches_the_approval(services, db, work):
    """A bare address (which the router alone would take for an outreach request) answers the open question:
    a new refund intent on the completed request, linked to the asked one, runs up to the refund's approval."""
    ops = asked(services, work)
    reply = ops.handle_text(OPERATOR, "ana@example.com")
    assert reply.title == "Taken as the customer for intent #1: intent #2 → run #2 (refund)."
    answer = intent(db, 2)
    assert answer["kind"] == "refund_customer"
    assert answer["request"] == f"{ASK} — ana@example.com"
    assert answer["params"]["answers"] == 1
    with db.connection() as conn:
        event = conn.execute("SELECT payload FROM audit_events WHERE kind = 'question.answered'").fetchone()
        links = conn.execute("SELECT from_id, to_id FROM memory_links WHERE relation = 'answers'").fetchall()
    assert event["payload"] == {"question": 1, "missing": ["customer"], "answer": "ana@example.com"}
    assert [(r["from_id"], r["to_id"]) for r in links] == [("2", "1")]
    work()
    assert run_state(db, 2) == "awaiting_approval"
    [approval] = outbox(db, "approval_request")
    assert "refund $12.00 to c-ana (charge sub:c-ana:1)" in str(approval)
    assert [e["kind"] for e in services.payments.ledger("c-ana")] == ["charge"]


def test_an_answer_that_still_lacks_the_value_is_asked_about_again(services, db, work):
    """The completed request is read again from the top: a reply naming no customer gets the question again,
    and the reply to that second question answers it."""
    ops = asked(services, work)
    ops.handle_text(OPERATOR, "the usual one")
    work()
    assert run_state(db, 2) == "cancelled"
    assert count(db, "audit_events", "kind = 'params.missing'") == 2
    reply = ops.handle_text(OPERATOR, "c-ana")
    assert reply.title.startswith("Taken as the customer for intent #2: intent #3")
    work()
    assert run_state(db, 3) == "awaiting_approval"


def test_a_reply_after_the_window_is_an_ordinary_message(services, db, work):
    """An hour and a minute later the question has expired: the same reply is not understood, and starts nothing."""
    ops = asked(services, work)
    later = services.now() + services.settings.answer_window + timedelta(minutes=1)
    services.clock = lambda: later
    reply = ops.handle_text(OPERATOR, "c-ana")
    assert reply.kind is MessageKind.REFUSAL and reply.title.startswith("I don't know how to do that yet")
    assert count(db, "intents") == 1
    assert count(db, "audit_events", "kind = 'question.answered'") == 0


def test_a_confident_new_request_is_a_new_request_and_closes_the_question(services, db, work):
    """A request the router places is started as itself, not glued to the question; the reply after it answers
    nothing, because the question is no longer the conversation's latest intent."""
    ops = asked(services, work)
    reply = ops.handle_text(OPERATOR, "draft a blog post about pricing for solo founders")
    assert reply.title.startswith("On it: intent #2")
    assert intent(db, 2)["kind"] == "content_post"
    assert intent(db, 2)["request"] == "draft a blog post about pricing for solo founders"
    late = ops.handle_text(OPERATOR, "c-ana")
    assert late.kind is MessageKind.REFUSAL
    assert count(db, "intents") == 2
    assert count(db, "audit_events", "kind = 'question.answered'") == 0


def test_a_second_reply_does_not_answer_again(services, db, work):
    """Once answered the question is closed: the next reply is an ordinary message, not a second refund."""
    ops = asked(services, work)
    ops.handle_text(OPERATOR, "c-ana")
    work()
    again = ops.handle_text(OPERATOR, "c-ben")
    assert again.kind is MessageKind.REFUSAL
    assert count(db, "intents") == 2
    assert count(db, "audit_events", "kind = 'question.answered'") == 1


def test_a_reply_that_lost_the_race_finds_the_question_closed(services, db, work):
    """Two replies at once: the one that read the question before the other committed cannot claim it after."""
    ops = asked(services, work)
    since = services.now() - services.settings.answer_window
    with db.connection() as conn:
        seen = intents.open_question(conn, channel=OPERATOR.channel, conversation=OPERATOR.conversation,
                                     requested_by=OPERATOR.identity, since=since)
    assert seen is not None and seen.intent.id == 1
    ops.handle_text(OPERATOR, "c-ana")
    with db.connection() as conn, conn.transaction():
        assert intents.claim(conn, seen, since=since) is False


def test_a_command_is_still_a_command_and_leaves_the_question_open(services, db, work):
    """"status" while a question is open is the status report; the reply after it still answers the question."""
    ops = asked(services, work)
    status = ops.handle_text(OPERATOR, "status")
    assert status.kind is MessageKind.STATUS
    assert count(db, "intents") == 1
    reply = ops.handle_text(OPERATOR, "c-ana")
    assert reply.title.startswith("Taken as the customer for intent #1")


def test_a_reply_in_another_conversation_answers_nothing(services, db, work):
    """The question belongs to the conversation it was asked in: the same words elsewhere are an ordinary message."""
    ops = asked(services, work)
    elsewhere = Requester(identity=OPERATOR.identity, channel=OPERATOR.channel, conversation="console:other")
    assert ops.handle_text(elsewhere, "c-ana").kind is MessageKind.REFUSAL
    assert count(db, "intents") == 1


def test_bare_values_are_told_from_requests():
    """Only a whole message that is one address or one amount counts as a bare value."""
    assert all(is_bare_value(t) for t in ("ana@example.com", "€40", "$12.50", "40 euros", "EUR 40"))
    assert not any(is_bare_value(t) for t in ("email ana@example.com", "40 euros for the March invoice",
                                              "refund Ana", "c-ana", ""))
