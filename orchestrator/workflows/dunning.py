"""Dunning: a customer's payment failed at Stripe; the operator hears of it, and after Stripe's last attempt
the customer's access is paused (with an approval where policy asks), undone by resuming it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors import AccessChange
from orchestrator import words
from orchestrator.policy import Effect
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Step, Workflow


def tell(ctx: StepContext) -> dict[str, Any]:
    p = ctx.intent.params
    next_attempt = p.get("next_attempt")
    ctx.notify(words.stripe_events.payment_failed_notice(
        p["name"], p["amount_cents"], p["currency"], p["attempt"],
        datetime.fromisoformat(next_attempt) if next_attempt else None),
        event="payment.failed_at_stripe", payload={"customer": p["contact_id"], "invoice": p.get("invoice"),
                                                   "attempt": p["attempt"], "final": p["final"]},
        dedupe="payment_failed")
    return {"told": True, "attempt": p["attempt"], "final": p["final"]}


def pause_access(ctx: StepContext) -> dict[str, Any]:
    p = ctx.intent.params
    if not p["final"]:
        return {"paused": False, "name": p["name"], "next_attempt": p.get("next_attempt")}
    change = AccessChange(contact_id=p["contact_id"], access="paused")
    ctx.require_approval(effect=Effect.ACCESS, action=change.model_dump(), ask=words.stripe_events.pause_request(
        p["name"], p["amount_cents"], p["currency"], p["attempt"]))
    key = ctx.action_key(p["contact_id"])
    ctx.link_action(key)
    changed = ctx.services.crm.execute(action=change, key=key)
    return {"paused": True, "name": p["name"], "change": changed.model_dump(), "key": key}


def resume_access(ctx: StepContext, result: dict[str, Any]) -> dict[str, Any]:
    """Compensation: access back to what it was before this run paused it (nothing, when it did not)."""
    return {"undone": ctx.services.crm.compensate(key=ctx.action_key(ctx.intent.params["contact_id"]))}


def _summarise_pause(result: dict[str, Any]) -> str:
    return words.stripe_events.paused_summary(result["name"], result["paused"], result.get("next_attempt"))


DUNNING = Workflow(
    name="dunning",
    title="dunning",
    describe="a failed Stripe payment: tell you, pause access after Stripe's last attempt",
    triggered_by="stripe",
    steps=(
        Step("tell", Effect.READ, tell, title="Tell the operator",
             summarise=lambda r: f"told you about attempt {r['attempt']}"),
        Step("pause_access", Effect.ACCESS, pause_access, compensate=resume_access,
             title="Pause access after the last attempt", summarise=_summarise_pause),
    ),
)
