"""The budget ledger: the planner's choices, atomic reservations under concurrency, alerts once, step-down and asks."""
import json
import threading
from datetime import UTC, date, datetime

import pytest

from agents import OfflineTemplateDrafter
from agents.tiers import OFFLINE_TEMPLATES
from orchestrator import Decision, budget
from orchestrator.budget import Caps, Period, Standing
from orchestrator.views import reports
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
    barrier = threading.Barrier(20)
    held: list[budget.Reservation] = []
    refused: list[budget.CapReached] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        try:
            with db.connection() as conn:
                reservation = budget.reserve(conn, run_id=None, step="s", tier="draft", model="m",
                                             estimate_usd=0.15, today=TODAY, caps=CAPS)
        except budget.CapReached as error:
            with lock:
                refused.append(error)
            return
        with db.connection() as conn, conn.transaction():
            budget.settle(conn, reservation, model="m", input_tokens=100, output_tokens=10, cost_usd=0.15, caps=CAPS)
        with lock:
            held.append(reservation)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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


def test_a_released_reservation_gives_its_budget_back(db):
    with db.connection() as conn:
        reservation = budget.reserve(conn, run_id=None, step="s", tier="draft", model="m", estimate_usd=0.9,
                                     today=TODAY, caps=CAPS)
    with db.connection() as conn, conn.transaction():
        budget.release(conn, reservation, caps=CAPS)
        budget.release(conn, reservation, caps=CAPS)
    with db.connection() as conn:
        budget.reserve(conn, run_id=None, step="s", tier="draft", model="m", estimate_usd=0.9, today=TODAY, caps=CAPS)


# -- through the engine: step-down, ask, wait ----------------------------------------------------------------

class OneKind:
    def classify(self, text):
        from orchestrator import Classification

        return Classification(kind="account_pause", workflow="account_pause", confidence=1.0)


def priced(services, settings, tmp_path, *, draft: float, route: float = 0.0, **budget_settings) -> None:
    """Give the draft (and route) tier a price, and the settings the caps under test."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"pricey-draft": [draft, draft * 4], "pricey-route": [route, route * 4]}))
    services.settings = settings.model_copy(update={"model_prices_path": prices, **budget_settings})
    services.models = services.models.__class__(
        draft=OfflineTemplateDrafter(templates=OFFLINE_TEMPLATES, model_name="pricey-draft"),
        reason=services.models.reason,
        route=OfflineTemplateDrafter(templates=OFFLINE_TEMPLATES, model_name="pricey-route"),
    )


def prespend(services, usd: float) -> None:
    today = budget.local_today(services.now(), services.settings)
    caps = Caps.from_settings(services.settings)
    with services.stores.pool.connection() as conn:
        reservation = budget.reserve(conn, run_id=None, step="earlier", tier="draft", model="m", estimate_usd=0,
                                     today=today, caps=caps)
    with services.stores.pool.connection() as conn, conn.transaction():
        budget.settle(conn, reservation, model="m", input_tokens=0, output_tokens=0, cost_usd=usd, caps=caps)


def pause_ben(services, work):
    from orchestrator import Operations

    ops = Operations(services, OneKind())
    ops.submit(OPERATOR, "put Ben Okafor's subscription on hold")
    work()
    return ops


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
    seed(services, declining=None)
    prespend(services, 0.7)
    ops = pause_ben(services, work)
    assert run_state(db, 1) == "awaiting_approval"
    with db.connection() as conn:
        ask = conn.execute("SELECT message FROM outbox WHERE kind = 'approval_request'").fetchone()["message"]
        status = reports.status(conn, now=services.now(), budget_daily_usd=1.0).plain_text()
    assert "needs about $0.20 more on the today cap: approve?" in ask["title"]
    assert "waiting for budget" in status
    assert count(db, "agent_calls") == 0
    for _ in range(3):  # each approved ask raises the cap for the one call that needed it
        if run_state(db, 1) != "awaiting_approval":
            break
        ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
        work()
    assert run_state(db, 1) == "succeeded"
    assert count(db, "audit_events", "kind = 'budget.raised'") >= 1


def test_at_the_cap_the_run_waits_alerts_and_resumes_when_the_operator_raises_it(services, settings, db, work,
                                                                                  tmp_path):
    """Every tier costs and the cap is spent: the run waits for budget, the 100 % alert goes out once, and an
    approved raise lets it finish."""
    priced(services, settings, tmp_path, draft=100.0, route=10.0, budget_daily_usd=1.0, budget_raise_step_usd=1.0)
    seed(services, declining=None)
    prespend(services, 1.0)
    ops = pause_ben(services, work)
    assert run_state(db, 1) == "awaiting_approval"
    with db.connection() as conn:
        ask = conn.execute("SELECT message FROM outbox WHERE kind = 'approval_request'").fetchone()["message"]
        alerts = [r["message"]["title"] for r in conn.execute("SELECT message FROM outbox WHERE kind = 'alert'")]
        status = reports.status(conn, now=services.now(), budget_daily_usd=1.0).plain_text()
    assert "the today cap is reached; raise it by $1.00" in ask["title"]
    assert alerts == ["Model spend today has reached 100% of its cap: $1.00 of $1.00."]
    assert "waiting for budget" in status
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded" and services.crm.get("c-ben").access == "paused"
    assert count(db, "outbox", "kind = 'alert' AND message->>'title' LIKE '%100%%'") == 1


def test_a_reason_tier_call_waits_for_an_approval_then_runs_once(services, db, work, monkeypatch):
    """Every reason-tier call goes through an approval unless policy exempts the intent kind."""
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

    ops = Operations(services, Reasoned())
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
