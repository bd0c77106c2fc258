"""The budget ledger: the planner's choices, atomic reservations under concurrency, alerts once, step-down and asks."""
import json
from datetime import UTC, date, datetime

import pytest

from orchestrator import Decision, budget
from orchestrator.budget import Caps, Period, Standing
from orchestrator.views import reports
from tests.concurrency import at_once
from tests.orchestrator.budget.helpers import OneKind, prespend, priced
from tests.orchestrator.helpers import OPERATOR, count, pending_approval, run_state, seed

TODAY = date(2026, 3, 14)
CAPS = Caps(daily=1.0, monthly=10.0, tier_daily={"reason": 0.5}, tier_monthly={})


def standing(scope: str, spent: float, cap: float | None, reserved: float = 0.0) -> Standing:
    return Standing(Period(scope, "day", TODAY), cap, spent, reserved)


def test_plan_uses_the_tier_while_far_from_every_cap():
    plan = budget.plan(tier="draft", estimates={"draft": 0.1, "route": 0.0},
                       standings={"draft": [standing("all", 0.2, 1.0)], "route": [standing("all", 0.2, 1.0)]},
                       may_step_down=True, step_down_at=0.8)
    assert plan.choice is budget.Choice.USE and plan.tier == "draft"


def test_plan_steps_down_near_a_cap_when_allowed():
    plan = budget.plan(tier="draft", estimates={"draft": 0.2, "route": 0.01},
                       standings={"draft": [standing("all", 0.7, 1.0)], "route": [standing("all", 0.7, 1.0)]},
                       may_step_down=True, step_down_at=0.8)
    assert (plan.choice, plan.tier) == (budget.Choice.STEP_DOWN, "route")


def test_plan_asks_for_the_shortfall_when_it_must_not_step_down():
    """$0.70 of $1.00 spent and a $0.58 call: it needs about $0.30 more (rounded up to the ask step)."""
    plan = budget.plan(tier="reason", estimates={"reason": 0.58},
                       standings={"reason": [standing("all", 0.7, 1.0)]}, may_step_down=False, step_down_at=0.8)
    assert plan.choice is budget.Choice.ASK and plan.shortfall_usd == pytest.approx(0.30)


def test_plan_waits_at_the_cap_when_nothing_it_may_use_fits():
    plan = budget.plan(tier="draft", estimates={"draft": 0.2, "route": 0.1},
                       standings={"draft": [standing("all", 1.0, 1.0)], "route": [standing("all", 1.0, 1.0)]},
                       may_step_down=True, step_down_at=0.8)
    assert plan.choice is budget.Choice.WAIT


def test_twenty_concurrent_reservations_never_exceed_the_cap(db):
    """20 threads reserve $0.15 each against a $1.00 daily cap at once: exactly 6 fit, and spend stays under it."""
    def call() -> budget.Reservation:
        with db.connection() as conn:
            reservation = budget.reserve(conn, run_id=None, step="s", tier="draft", model="m",
                                         estimate_usd=0.15, today=TODAY, caps=CAPS)
        with db.connection() as conn, conn.transaction():
            budget.settle(conn, reservation, model="m", input_tokens=100, output_tokens=10, cost_usd=0.15, caps=CAPS)
        return reservation

    results = at_once([call] * 20, expect=(budget.CapReached,))
    held = [r for r in results if isinstance(r, budget.Reservation)]
    refused = [r for r in results if isinstance(r, budget.CapReached)]
    assert (len(held), len(refused)) == (6, 14)
    with db.connection() as conn:
        day = budget.standings(conn, tiers=["draft"], today=TODAY, caps=CAPS)["draft"]
    daily = next(s for s in day if s.period.scope == "all" and s.period.period == "day")
    assert daily.spent == pytest.approx(6 * 0.15) and daily.spent <= 1.0 and daily.reserved == 0


def test_alerts_at_50_80_and_100_percent_are_posted_once_each(db):
    def spend(amount: float) -> list[str]:
        with db.connection() as conn:
            reservation = budget.reserve(conn, run_id=None, step="s", tier="draft", model="m", estimate_usd=amount,
                                         today=TODAY, caps=CAPS)
        with db.connection() as conn, conn.transaction():
            after = budget.settle(conn, reservation, model="m", input_tokens=1, output_tokens=1, cost_usd=amount,
                                  caps=CAPS)
            return budget.post_alerts(conn, after, channel="console", conversation="console:test",
                                      now=datetime(2026, 3, 14, 12, tzinfo=UTC))

    assert spend(0.3) == []
    assert spend(0.25) == ["budget:today:2026-03-14:50"]
    assert spend(0.05) == []
    assert spend(0.3) == ["budget:today:2026-03-14:80"]
    assert spend(0.1) == ["budget:today:2026-03-14:100"]
    assert count(db, "outbox", "kind = 'alert'") == 3
    assert count(db, "audit_events", "kind = 'budget.alert'") == 3


def test_a_released_reservation_gives_its_budget_back_once(db):
    """Released twice, a $0.40 hold is given back once: another call's $0.50 hold stays counted on every period,
    the released call is marked released, and the room it freed (exactly $0.50 of the $1.00 day) fits again."""
    with db.connection() as conn:
        released = budget.reserve(conn, run_id=None, step="s", tier="draft", model="m", estimate_usd=0.4,
                                  today=TODAY, caps=CAPS)
        budget.reserve(conn, run_id=None, step="t", tier="draft", model="m", estimate_usd=0.5, today=TODAY, caps=CAPS)
    with db.connection() as conn, conn.transaction():
        budget.release(conn, released, caps=CAPS)
        budget.release(conn, released, caps=CAPS)
    with db.connection() as conn:
        after = budget.standings(conn, tiers=["draft"], today=TODAY, caps=CAPS)["draft"]
        state = conn.execute("SELECT state FROM budget_calls WHERE id = %s", (released.id,)).fetchone()["state"]
    assert [(s.period.scope, s.period.period, s.reserved, s.spent) for s in after] == [
        ("all", "day", 0.5, 0.0), ("all", "month", 0.5, 0.0), ("draft", "day", 0.5, 0.0), ("draft", "month", 0.5, 0.0)]
    assert state == "released"
    with db.connection() as conn:
        budget.reserve(conn, run_id=None, step="u", tier="draft", model="m", estimate_usd=0.5, today=TODAY, caps=CAPS)
        with pytest.raises(budget.CapReached) as refused:
            budget.reserve(conn, run_id=None, step="v", tier="draft", model="m", estimate_usd=0.01, today=TODAY,
                           caps=CAPS)
    assert refused.value.standing.period == Period("all", "day", TODAY)


def test_a_call_whose_reservation_was_released_while_it_ran_still_records_its_cost(db):
    """A worker that lost its run mid-call: the new owner released the call's reservation as abandoned, then the
    call came back billed. Its cost is recorded once (row settled, spent counted, nothing left reserved), not lost."""
    with db.connection() as conn:
        call = budget.reserve(conn, run_id=None, step="s", tier="draft", model="m", estimate_usd=0.4, today=TODAY,
                              caps=CAPS)
    with db.connection() as conn, conn.transaction():
        budget.release(conn, call, caps=CAPS)
    with db.connection() as conn, conn.transaction():
        after = budget.settle(conn, call, model="m", input_tokens=100, output_tokens=50, cost_usd=0.3, caps=CAPS)
        again = budget.settle(conn, call, model="m", input_tokens=100, output_tokens=50, cost_usd=0.3, caps=CAPS)
        row = conn.execute("SELECT state, cost_usd::float8 AS c FROM budget_calls WHERE id = %s", (call.id,)).fetchone()
    assert (row["state"], row["c"]) == ("settled", 0.3)
    assert [(s.period.scope, s.period.period, s.reserved, s.spent) for s in after] == [
        ("all", "day", 0.0, 0.3), ("all", "month", 0.0, 0.3), ("draft", "day", 0.0, 0.3), ("draft", "month", 0.0, 0.3)]
    assert again == []


# -- through the engine: step-down, ask, wait ----------------------------------------------------------------

def pause_ben(services, work):
    from orchestrator import Operations

    ops = Operations(services, OneKind())
    ops.submit(OPERATOR, "put Ben Okafor's subscription on hold")
    work()
    return ops


def waiting_for_budget(services, db, work, *, prespent: float):
    """Ben's pause asked with `prespent` of today's cap spent before: the run waits for a budget approval, and
    status says so. Returns the operations and the ask's title."""
    seed(services, declining=None)
    prespend(services, prespent)
    ops = pause_ben(services, work)
    assert run_state(db, 1) == "awaiting_approval"
    with db.connection() as conn:
        ask = conn.execute("SELECT message FROM outbox WHERE kind = 'approval_request'").fetchone()["message"]
        status = reports.status(conn, now=services.now(), budget_daily_usd=1.0).plain_text()
    assert "waiting for budget" in status
    return ops, ask["title"]


def test_near_the_cap_a_draft_step_steps_down_and_its_report_says_so(services, settings, db, work, tmp_path):
    """Draft calls (~$0.45 reserved each) on $0.70 of a $1.00 cap go to the free route tier instead."""
    priced(services, settings, tmp_path, draft=100.0, budget_daily_usd=1.0)
    seed(services, declining=None)
    prespend(services, 0.7)
    pause_ben(services, work)
    assert run_state(db, 1) == "succeeded" and services.crm.get("c-ben").access == "paused"
    with db.connection() as conn:
        tiers = [r["tier"] for r in conn.execute("SELECT tier FROM agent_calls ORDER BY id")]
        report = conn.execute("SELECT message FROM outbox WHERE kind = 'report'").fetchone()["message"]
    assert tiers == ["route", "route"]
    text = json.dumps(report)
    assert "used the route tier instead of draft: the budget was near its cap" in text


def test_a_step_that_must_not_step_down_asks_for_the_shortfall(services, settings, db, work, tmp_path):
    """Same budget, but policy lets no step step down: the run asks "needs about $… more: approve?"."""
    priced(services, settings, tmp_path, draft=100.0, budget_daily_usd=1.0)
    services.policy = services.policy.model_copy(update={"step_down_from": frozenset()})
    ops, ask = waiting_for_budget(services, db, work, prespent=0.7)
    assert "needs about $0.20 more on the today cap: approve?" in ask
    assert count(db, "agent_calls") == 0
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    # One ask, one raise: the first draft call cost ~$0.01 of the ~$0.42 it reserved, so the second one's
    # reservation fits the raised $1.20 cap without asking again.
    assert run_state(db, 1) == "succeeded"
    assert count(db, "approvals") == 1 and count(db, "audit_events", "kind = 'budget.raised'") == 1
    with db.connection() as conn:
        raised = conn.execute("SELECT raised_usd::float8 AS r FROM budget_periods WHERE scope = 'all'"
                              " AND period = 'day'").fetchone()["r"]
        tiers = [r["tier"] for r in conn.execute("SELECT tier FROM agent_calls ORDER BY id")]
    assert raised == pytest.approx(0.20) and tiers == ["draft", "draft"]


def test_at_the_cap_the_run_waits_alerts_and_resumes_when_the_operator_raises_it(services, settings, db, work,
                                                                                  tmp_path):
    """Every tier costs and the cap is spent: the run waits for budget, the 100 % alert goes out once, and an
    approved raise lets it finish."""
    priced(services, settings, tmp_path, draft=100.0, route=10.0, budget_daily_usd=1.0, budget_raise_step_usd=1.0)
    ops, ask = waiting_for_budget(services, db, work, prespent=1.0)
    with db.connection() as conn:
        alerts = [r["message"]["title"] for r in conn.execute("SELECT message FROM outbox WHERE kind = 'alert'")]
    assert "the today cap is reached; raise it by $1.00" in ask
    assert alerts == ["Model spend today has reached 100% of its cap: $1.00 of $1.00."]
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded" and services.crm.get("c-ben").access == "paused"
    assert count(db, "outbox", "kind = 'alert' AND message->>'title' LIKE '%100%%'") == 1


def reasoned(services, monkeypatch):
    """Operations whose every request runs one step that thinks on the reason tier."""
    from agents import post_agent
    from orchestrator import Classification, Operations
    from orchestrator.policy import Effect
    from orchestrator.workflows import WORKFLOWS
    from orchestrator.workflows.model import Step, Workflow
    from orchestrator.workflows.snapshot import Gathered

    def think(ctx):
        return ctx.agent(post_agent, ctx.snapshot(gather=lambda: Gathered(facts={"topic": "pricing"})), tier="reason")

    monkeypatch.setitem(WORKFLOWS, "reasoned", Workflow("reasoned", "reasoned", (Step("think", Effect.REASON, think),)))

    class Reasoned:
        def classify(self, text):
            return Classification(kind="reasoned", workflow="reasoned", confidence=1.0)

    return Operations(services, Reasoned())


def test_a_reason_tier_call_waits_for_an_approval_then_runs_once(services, db, work, monkeypatch):
    """Every reason-tier call goes through an approval unless policy exempts the intent kind."""
    ops = reasoned(services, monkeypatch)
    ops.submit(OPERATOR, "think hard about pricing")
    work()
    assert run_state(db, 1) == "awaiting_approval" and count(db, "agent_calls") == 0
    with db.connection() as conn:
        ask = conn.execute("SELECT message FROM outbox WHERE kind = 'approval_request'").fetchone()["message"]
    assert "Use the reasoning model" in ask["title"]
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert count(db, "agent_calls", "tier = 'reason'") == 1


def test_a_reason_tier_approval_does_not_carry_over_to_another_model(services, db, work, monkeypatch):
    """The approval names the reasoning model: configured to another model before the call ran, the step asks
    again (naming the new one) instead of spending on a model the operator never approved."""
    import dataclasses

    ops = reasoned(services, monkeypatch)
    ops.submit(OPERATOR, "think hard about pricing")
    work()
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    bigger = services.models.reason.model_copy(update={"model_name": "bigger"})
    monkeypatch.setattr(services, "models", dataclasses.replace(services.models, reason=bigger))
    work()
    assert run_state(db, 1) == "awaiting_approval" and count(db, "agent_calls") == 0
    with db.connection() as conn:
        asks = conn.execute("SELECT message FROM outbox WHERE kind = 'approval_request' ORDER BY id").fetchall()
    assert len(asks) == 2 and "bigger" in json.dumps(asks[1]["message"])


def test_reservation_of_a_killed_attempt_is_given_back_when_the_step_runs_again(services, db, work):
    """A worker killed mid-call leaves its reservation open; the re-run releases it, so caps don't fill with ghosts."""
    from orchestrator import budget as ledger
    from tests.orchestrator.helpers import OPERATOR, WINBACK, operations, seed

    seed(services, declining=None)
    operations(services).submit(OPERATOR, WINBACK)
    caps = ledger.Caps.from_settings(services.settings)
    with db.connection() as conn:
        ghost = ledger.reserve(conn, run_id=1, step="draft_campaign", tier="draft", model="offline-template-drafter",
                               estimate_usd=0.25, today=ledger.local_today(services.now(), services.settings),
                               caps=caps)
    work()
    with db.connection() as conn:
        state = conn.execute("SELECT state FROM budget_calls WHERE id = %s", (ghost.id,)).fetchone()["state"]
        held = conn.execute("SELECT coalesce(sum(reserved_usd), 0)::float8 AS r FROM budget_periods").fetchone()["r"]
    assert state == "released" and held == 0.0


def test_a_runless_reservation_left_by_a_killed_call_is_given_back_by_the_budget_check(db):
    """Review defect 10's third leak: the summariser's reservations have no run, so no re-run released them; a
    killed call's hold stayed against every cap for ever. Only holds older than any call can last are given back."""
    from datetime import timedelta

    with db.connection() as conn:
        old = budget.reserve(conn, run_id=None, step="summarise", tier="draft", model="m", estimate_usd=0.4,
                             today=TODAY, caps=CAPS)
        fresh = budget.reserve(conn, run_id=None, step="summarise", tier="draft", model="m", estimate_usd=0.3,
                               today=TODAY, caps=CAPS)
        conn.execute("UPDATE budget_calls SET reserved_at = now() - interval '3 hours' WHERE id = %s", (old.id,))
        conn.commit()
    with db.connection() as conn, conn.transaction():
        now = conn.execute("SELECT now() AS n").fetchone()["n"]
        assert budget.release_stale(conn, before=now - timedelta(hours=2), caps=CAPS) == 1
        states = {r["id"]: r["state"] for r in conn.execute("SELECT id, state FROM budget_calls")}
        reserved = conn.execute("SELECT reserved_usd::float8 AS r FROM budget_periods WHERE scope = 'all' "
                                "AND period = 'day'").fetchone()["r"]
    assert states == {old.id: "released", fresh.id: "reserved"}
    assert reserved == pytest.approx(0.3)
