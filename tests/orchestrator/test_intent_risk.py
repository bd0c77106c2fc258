"""An intent's risk means something: asked to be careful, opsos makes every outside action wait for the operator."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator import Decision
from orchestrator.intents import parse_constraints
from orchestrator.policy import Effect, Policy, Risk
from tests.orchestrator.helpers import OPERATOR, WINBACK, count, operations, pending_approval, run_state, seed

NOW = datetime(2026, 3, 14, 9, tzinfo=UTC)


@pytest.mark.parametrize(("text", "risk"), [
    ("launch the win-back campaign", Risk.NORMAL),
    ("launch the win-back campaign, carefully", Risk.HIGH),
    ("careful: refund Ben", Risk.HIGH),
    ("refund Ben but ask me first", Risk.HIGH),
    ("this is high-risk: pause Ana", Risk.HIGH),
    ("check with me before emailing Ana", Risk.HIGH),
    ("a careless typo is not a request for care", Risk.NORMAL),
])
def test_the_request_says_how_careful_to_be(text, risk) -> None:
    assert parse_constraints(text, now=NOW, default_budget=5.0, default_days=7).risk is risk


@pytest.mark.parametrize(("effect", "normal", "high"), [
    (Effect.READ, False, False),
    (Effect.DRAFT, False, False),
    (Effect.CHARGE, False, True),
    (Effect.ACCESS, False, True),
    (Effect.EMAIL_CUSTOMERS, True, True),
    (Effect.REFUND, True, True),
])
def test_high_risk_raises_which_effects_wait_for_the_operator(effect, normal, high) -> None:
    policy = Policy(operators=frozenset({"console:operator"}))
    assert policy.needs_approval(effect) is normal
    assert policy.needs_approval(effect, risk=Risk.HIGH) is high


def test_a_careful_win_back_asks_before_charging_the_renewals(services, db, work):
    """Normally renewals are charged without asking (the subscriptions authorise them); asked to be careful, the
    run stops before the first charge with an approval naming every renewal, and charges once approved."""
    seed(services, declining=None)
    ops = operations(services)
    reply = ops.submit(OPERATOR, WINBACK + ", carefully")
    assert "every outside action waits for your approval" in reply.plain_text()
    work()
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)  # the emails
    work()
    assert run_state(db, 1) == "awaiting_approval"
    assert count(db, "payments_ledger") == 0
    with db.connection() as conn:
        titles = [r["message"]["title"] for r in conn.execute(
            "SELECT message FROM outbox WHERE kind = 'approval_request' ORDER BY id")]
    assert "Charge 5 win-back renewals" in titles[-1]
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert count(db, "payments_ledger", "kind = 'charge'") == 5


def test_a_careful_intent_asks_before_the_reason_tier_even_for_an_exempt_kind() -> None:
    policy = Policy(operators=frozenset({"console:operator"}), reason_exempt_kinds=frozenset({"faq"}))
    assert policy.reason_needs_approval("faq") is False
    assert policy.reason_needs_approval("faq", risk=Risk.HIGH) is True
