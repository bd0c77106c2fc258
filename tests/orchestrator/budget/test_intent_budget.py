"""An intent's own budget ("… budget $0.30") is a cap its model calls must fit, beside the day's and the month's."""
from __future__ import annotations

import pytest

from orchestrator import Decision, Operations
from orchestrator.budget import planning
from tests.orchestrator.budget.helpers import OneKind, priced
from tests.orchestrator.helpers import OPERATOR, count, pending_approval, run_state, seed


def test_a_call_that_would_overspend_the_intents_budget_asks_before_it_runs(services, settings, db, work, tmp_path):
    """Proves the budget the operator stated is enforced: no daily cap is set, yet the draft call (~$0.45) does not
    run on an intent budgeted at $0.30; the operator is asked to raise that intent's budget, and on approval it runs."""
    priced(services, settings, tmp_path, draft=100.0, budget_daily_usd=None)
    services.policy = services.policy.model_copy(update={"step_down_from": frozenset()})
    seed(services, declining=None)
    ops = Operations(services, OneKind())
    ops.submit(OPERATOR, "put Ben Okafor's subscription on hold, budget $0.30")
    work()
    assert run_state(db, 1) == "awaiting_approval" and count(db, "agent_calls") == 0
    with db.connection() as conn:
        ask = conn.execute("SELECT message FROM outbox WHERE kind = 'approval_request'").fetchone()["message"]
        row = conn.execute("SELECT scope, period FROM budget_asks").fetchone()
    assert "on the intent #1 cap: approve?" in ask["title"]
    assert (row["scope"], row["period"]) == ("intent:1", planning.INTENT)
    for _ in range(3):  # an approved raise covers the call that needed it; a second call may ask again
        if run_state(db, 1) != "awaiting_approval":
            break
        ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
        work()
    assert run_state(db, 1) == "succeeded"
    with db.connection() as conn:
        spent = conn.execute("SELECT spent_usd::float8 AS s, raised_usd::float8 AS r FROM budget_periods "
                             "WHERE scope = 'intent:1'").fetchone()
    # The raise was applied to the intent's own row, and its spend stayed within budget plus raise.
    assert spent["r"] > 0 and 0 < spent["s"] <= 0.30 + spent["r"] + 1e-9
    assert count(db, "audit_events", "kind = 'budget.raised' AND payload->>'cap' = 'intent #1'") >= 1


def test_an_intent_within_its_budget_runs_without_asking(services, settings, db, work, tmp_path):
    priced(services, settings, tmp_path, draft=100.0, budget_daily_usd=None)
    seed(services, declining=None)
    Operations(services, OneKind()).submit(OPERATOR, "put Ben Okafor's subscription on hold, budget $20")
    work()
    assert run_state(db, 1) == "succeeded"
    assert count(db, "approvals") == 0


@pytest.mark.parametrize(("scope", "period", "name"), [
    ("all", planning.DAY, "today"),
    ("draft", planning.MONTH, "draft tier this month"),
    ("intent:7", planning.INTENT, "intent #7"),
])
def test_each_cap_has_a_name_the_operator_reads(scope, period, name) -> None:
    from datetime import date

    assert planning.cap_name(planning.Period(scope, period, date(2026, 3, 14))) == name


def test_an_intents_budget_is_worded_as_one_that_never_resets() -> None:
    from orchestrator import words

    ask = words.budget_request(step="draft", tier="draft", cap="intent #3", spent=0.3, limit=0.3, raise_usd=0.2,
                               waiting=True)
    assert "raises this request's own budget" in ask.why and "this period only" not in ask.why
    alert = words.budget_alert("intent #3", 100, 0.3, 0.3)
    assert alert.title == "Model spend on intent #3 has reached 100% of its budget: $0.30 of $0.30."
    assert "until you raise its budget" in alert.text
    day = words.budget_alert("today", 100, 1.0, 1.0)
    assert day.title == "Model spend today has reached 100% of its cap: $1.00 of $1.00."
