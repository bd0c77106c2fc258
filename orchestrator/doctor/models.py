"""The model tiers' check: with --models, one tiny call per tier that is not offline, reserved and settled in the
budget ledger like every model call (`step` "doctor", no run); without it, only what each tier is."""
from __future__ import annotations

from agents import OFFLINE, TIER_ORDER, UsageRecorder, model_name, with_output_cap, with_recorder
from orchestrator import budget
from orchestrator.doctor.verdict import Verdict, failed, ok, skipped
from orchestrator.services import Services
from orchestrator.words import doctor as said

PART = "models"
STEP = "doctor"
PROMPT = "Reply with the single word OK."
# Enough for "OK" from any provider; the reservation is made for this many output tokens, so it bounds the bill.
MAX_OUTPUT_TOKENS = 8


def check_models(services: Services, *, call: bool, database: bool = True) -> list[Verdict]:
    settings = services.settings
    specs = {"route": settings.route_model, "draft": settings.draft_model, "reason": settings.reason_model}
    configured = [tier for tier in TIER_ORDER if specs[tier] != OFFLINE]
    if not configured:
        return [skipped(PART, said.MODELS_OFFLINE)]
    if not call:
        return [skipped(PART, said.model_not_called(tier, specs[tier])) for tier in configured]
    if not database:
        return [skipped(PART, said.MODEL_NEEDS_DATABASE)]
    return [_call(services, tier, specs[tier]) for tier in configured]


def _call(services: Services, tier: str, spec: str) -> Verdict:
    settings, pool = services.settings, services.stores.pool
    model = services.models.tier(tier)
    name = model_name(model)
    caps, prices = budget.Caps.from_settings(settings), budget.price_table(settings.model_prices_path)
    estimate = prices.estimate(name, len(PROMPT), MAX_OUTPUT_TOKENS)
    try:
        with pool.connection() as conn:
            held = budget.reserve(conn, run_id=None, step=STEP, tier=tier, model=name, estimate_usd=estimate,
                                  today=budget.local_today(services.now(), settings), caps=caps)
    except budget.CapReached:
        return failed(PART, said.model_over_budget(tier, spec), said.MODEL_BUDGET_FIX)
    recorder = UsageRecorder()
    try:
        with_recorder(with_output_cap(model, MAX_OUTPUT_TOKENS), recorder).invoke(PROMPT)
    except Exception as error:  # whatever the provider's client raises, the operator reads it as said
        with pool.connection() as conn, conn.transaction():
            if recorder.responses:
                budget.settle(conn, held, model=recorder.model(name), input_tokens=recorder.input_tokens,
                              output_tokens=recorder.output_tokens, cost_usd=recorder.cost(prices), caps=caps)
            else:
                budget.release(conn, held, caps=caps)
        return failed(PART, said.model_failed(tier, spec, str(error).splitlines()[0] if str(error) else
                                              type(error).__name__), said.MODEL_FIX)
    cost = recorder.cost(prices)
    with pool.connection() as conn, conn.transaction():
        budget.settle(conn, held, model=recorder.model(name), input_tokens=recorder.input_tokens,
                      output_tokens=recorder.output_tokens, cost_usd=cost, caps=caps)
    return ok(PART, said.model_answered(tier, spec, cost))
