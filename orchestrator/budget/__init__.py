"""The budget: the pure plan, the ledger in PostgreSQL, alerts, the model-call protocol, prices and spend views.

Where a model call's budget is reserved: `calls.call_agent` (reserve → call → settle), against `ledger.RESERVE`.
"""
from orchestrator.budget.alerts import post_alerts
from orchestrator.budget.ledger import (
    CapReached,
    Reservation,
    apply_raise,
    raises_applied,
    record_ask,
    release,
    release_abandoned,
    reserve,
    run_calls,
    settle,
    standings,
    waiting_for_budget,
)
from orchestrator.budget.planning import (
    ALL,
    DAY,
    MONTH,
    THRESHOLDS,
    Caps,
    Choice,
    Period,
    Plan,
    Standing,
    alert_key,
    cap_name,
    crossed,
    local_today,
    periods_for,
    plan,
)
from orchestrator.budget.prices import price_table

__all__ = [
    "ALL",
    "DAY",
    "MONTH",
    "THRESHOLDS",
    "CapReached",
    "Caps",
    "Choice",
    "Period",
    "Plan",
    "Reservation",
    "Standing",
    "alert_key",
    "apply_raise",
    "cap_name",
    "crossed",
    "local_today",
    "periods_for",
    "plan",
    "post_alerts",
    "price_table",
    "raises_applied",
    "record_ask",
    "release",
    "release_abandoned",
    "reserve",
    "run_calls",
    "settle",
    "standings",
    "waiting_for_budget",
]
