"""A model call within the budget: reserve its estimate, call, settle what the model reported, alert.

This is the one path by which a step calls a model (`StepContext.agent`). The concurrency rule is the
ledger's (see `ledger.RESERVE`); this module decides what to reserve and what to tell the operator.
"""
from __future__ import annotations

from typing import Any, Protocol

from agents import StructuredAgent, UsageRecorder, cheaper_tiers, model_name, with_output_cap, with_recorder
from connectors import check_fence
from orchestrator import agent_calls, approvals, audit, words
from orchestrator.approvals import Approval, ApprovalRequest, AwaitingApproval
from orchestrator.budget import ledger
from orchestrator.budget.alerts import post_alerts
from orchestrator.budget.planning import Caps, Choice, Plan, cap_name, intent_period, local_today
from orchestrator.budget.planning import plan as make_plan
from orchestrator.budget.prices import price_table
from orchestrator.delivery.address import operator_address
from orchestrator.errors import BudgetExceeded
from orchestrator.intents import Intent
from orchestrator.policy import Effect
from orchestrator.runs import Run
from orchestrator.services import Services


class CallSite(Protocol):
    """Where a model call is made: a step of a run for an intent (a `StepContext`)."""

    services: Services
    run: Run
    intent: Intent
    step: str

    def require_approval(self, *, effect: Effect, action: Any, ask: ApprovalRequest) -> Approval | None: ...


def call_agent(site: CallSite, agent: StructuredAgent, inputs: dict[str, Any], *, tier: str = "draft",
               may_step_down: bool | None = None) -> dict[str, Any]:
    """Run an agent on a tier within the budget, or reuse the stored result of the same prompt.

    Before the call its estimated cost is reserved in the budget ledger; after it the usage the model
    reported is settled. Near a cap a step that may step down (policy, or `may_step_down`) uses a
    cheaper tier and the report says so. Raises AwaitingApproval when the operator must decide: a
    reason-tier call, or a call that needs more budget than a cap has left ("waiting for budget").
    """
    prompt_hash = agent.prompt_hash(inputs)
    pool = site.services.stores.pool
    with pool.connection() as conn:
        stored = agent_calls.find(conn, run_id=site.run.id, step=site.step, prompt_hash=prompt_hash)
    if stored is not None:
        return stored.output
    settings, policy = site.services.settings, site.services.policy
    # The intent's own budget ("… budget $20") is one more cap the call must fit, beside the day's and the month's.
    spent_for = intent_period(site.intent.id, site.intent.created_at)
    caps = Caps.from_settings(settings).with_intent(spent_for, site.intent.budget_usd)
    prices = price_table(settings.model_prices_path)
    step_down = policy.may_step_down(tier) if may_step_down is None else may_step_down
    tiers = [tier, *cheaper_tiers(tier)] if step_down else [tier]
    models = {t: site.services.models.tier(t) for t in tiers}
    prompt_chars = len(agent.prompt.invoke(inputs).to_string())
    # The output allowance is both what is reserved and what the model may write (`with_output_cap` below), so
    # the reservation bounds the bill.
    max_output = settings.model_max_output_tokens
    estimates = {t: prices.estimate(model_name(models[t]), prompt_chars, max_output) for t in tiers}
    today = local_today(site.services.now(), settings)
    # Only the run's owner may give back what an earlier attempt of the step reserved: a worker that lost the
    # run would release the reservation of the new owner's call in flight (the fence raises OwnershipLost).
    check_fence()
    with pool.connection() as conn, conn.transaction():
        ledger.release_abandoned(conn, run_id=site.run.id, step=site.step, caps=caps)
    reservation = None
    # A reservation lost to a concurrent one, or a raise just applied, is planned again; four rounds is plenty.
    for _ in range(4):
        with pool.connection() as conn, conn.transaction():
            standings = ledger.standings(conn, tiers=tiers, today=today, caps=caps, intent=spent_for)
        plan = make_plan(tier=tier, estimates=estimates, standings=standings, may_step_down=step_down,
                           step_down_at=settings.budget_step_down_at, raise_step=settings.budget_raise_step_usd)
        if plan.choice in (Choice.ASK, Choice.WAIT):
            _budget_raise(site, plan, prompt_hash)
            continue
        if plan.tier == "reason" and policy.reason_needs_approval(site.intent.kind, risk=site.intent.risk):
            site.require_approval(
                # The model is bound too: the operator approved this model's price and judgement, not the tier's.
                effect=Effect.REASON, action={"agent": agent.name, "tier": "reason", "prompt_hash": prompt_hash,
                                              "model": model_name(models["reason"])},
                ask=words.reason_request(step=site.step, agent=agent.name, model=model_name(models["reason"]),
                                         estimate_usd=estimates["reason"], intent=site.intent))
        try:
            with pool.connection() as conn:
                reservation = ledger.reserve(conn, run_id=site.run.id, step=site.step, tier=plan.tier,
                                             model=model_name(models[plan.tier]),
                                             estimate_usd=estimates[plan.tier], today=today, caps=caps,
                                             intent=spent_for)
            break
        except ledger.CapReached:
            continue
    if reservation is None:
        raise BudgetExceeded(0.0, 0.0)
    # The model call is an outside action: made only while the run is still ours. A loss found here leaves the
    # reservation open for the new owner's `release_abandoned`, outside the `try` that would give it back.
    check_fence()
    recorder = UsageRecorder()
    try:
        result = agent.invoke(with_recorder(with_output_cap(models[plan.tier], max_output), recorder), inputs)
    except Exception as error:
        with pool.connection() as conn, conn.transaction():
            if recorder.responses:
                # The provider answered and said what it cost (a retry that gave up, say): that is spent.
                ledger.settle(conn, reservation, model=recorder.model(reservation.model),
                              input_tokens=recorder.input_tokens, output_tokens=recorder.output_tokens,
                              cost_usd=recorder.cost(prices), caps=caps)
            elif isinstance(error, ValueError):
                # It answered, but with something that did not parse (pydantic's and LangChain's parse errors are
                # ValueErrors), and a client that parses as it reads drops the usage with it. It was billed; what
                # for is unknown, so the estimate held for it counts as spent: a cap reached a little early, never
                # spend that no cap sees.
                ledger.settle(conn, reservation, model=reservation.model, input_tokens=0, output_tokens=0,
                              cost_usd=reservation.estimate_usd, caps=caps)
            else:
                # No answer (the connection, a timeout, a refusal before any work): nothing was billed.
                ledger.release(conn, reservation, caps=caps)
        raise
    # The callback saw every response of the call (a retried one too); the result only the last.
    input_tokens = recorder.input_tokens if recorder.responses else result.input_tokens
    output_tokens = recorder.output_tokens if recorder.responses else result.output_tokens
    cost = recorder.cost(prices) if recorder.responses else prices.cost(result.model, input_tokens, output_tokens)
    with pool.connection() as conn, conn.transaction():
        after = ledger.settle(conn, reservation, model=recorder.model(result.model), input_tokens=input_tokens,
                              output_tokens=output_tokens, cost_usd=cost, caps=caps)
        call = agent_calls.record(
            conn, run_id=site.run.id, step=site.step, tier=plan.tier, model=result.model, prompt_hash=prompt_hash,
            output=result.output.model_dump(mode="json"), input_tokens=input_tokens,
            output_tokens=output_tokens, cost_usd=cost,
        )
        audit.append(conn, at=site.services.now(), actor=f"agent:{agent.name}", kind="agent.called",
                     intent_id=site.intent.id,
                     run_id=site.run.id, payload={"step": site.step, "tier": plan.tier, "model": result.model,
                                                  "prompt_hash": prompt_hash, "call": call.id,
                                                  "tokens": input_tokens + output_tokens, "cost_usd": cost})
        if plan.tier != tier:
            audit.append(conn, at=site.services.now(), actor="budget", kind="budget.stepped_down",
                         intent_id=site.intent.id,
                         run_id=site.run.id, payload={"step": site.step, "from": tier, "to": plan.tier,
                                                      "note": words.stepped_down(site.step, tier, plan.tier)})
        channel, conversation = operator_address(conn, settings.home_channel)
        post_alerts(conn, after, channel=channel, conversation=conversation, now=site.services.now())
    return call.output


def _budget_raise(site: CallSite, plan: Plan, prompt_hash: str) -> None:
    """Apply the operator's approved raise for this ask and return, or ask for it (AwaitingApproval)."""
    assert plan.blocking is not None
    pool = site.services.stores.pool
    with pool.connection() as conn:
        round_ = ledger.raises_applied(conn, run_id=site.run.id, step=site.step)
    period = plan.blocking.period
    # Bound to the cap and the amount, not to the spend: other runs' calls while it waits ask nothing new.
    action = {"raise_cap": period.scope, "period": period.period, "starts_on": period.starts_on.isoformat(),
              "amount_usd": plan.shortfall_usd, "step": site.step, "prompt_hash": prompt_hash, "round": round_}
    digest = approvals.action_digest(action)
    with pool.connection() as conn, conn.transaction():
        ledger.record_ask(conn, run_id=site.run.id, step=site.step, digest=digest, plan=plan)
        granted = approvals.granted(conn, run_id=site.run.id, step=site.step, digest=digest)
        if granted is not None:
            amount = ledger.apply_raise(conn, run_id=site.run.id, step=site.step, digest=digest,
                                        approval_id=granted.id)
            audit.append(conn, at=site.services.now(), actor=granted.decided_by or "operator", kind="budget.raised",
                         intent_id=site.intent.id, run_id=site.run.id,
                         payload={"cap": cap_name(period), "amount_usd": amount, "approval": granted.id})
            return
        if plan.choice is Choice.WAIT:
            channel, conversation = operator_address(conn, site.services.settings.home_channel)
            post_alerts(conn, [plan.blocking], channel=channel, conversation=conversation, now=site.services.now(),
                               force_full=period)
    raise AwaitingApproval(digest=digest, ask=words.budget_request(
        step=site.step, tier=plan.tier, cap=cap_name(period), spent=plan.blocking.spent
        + plan.blocking.reserved, limit=plan.blocking.cap or 0.0, raise_usd=plan.shortfall_usd,
        waiting=plan.choice is Choice.WAIT))
