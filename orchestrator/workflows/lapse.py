"""A Stripe subscription was cancelled: the contact becomes lapsed, a win-back candidate, and the operator is told.
Undone by putting their status back."""
from __future__ import annotations

from typing import Any

from connectors import StatusChange
from orchestrator import words
from orchestrator.policy import Effect
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Step, Workflow


def mark_lapsed(ctx: StepContext) -> dict[str, Any]:
    p = ctx.intent.params
    change = StatusChange(contact_id=p["contact_id"], status="lapsed")
    key = ctx.action_key(p["contact_id"])
    ctx.link_action(key)
    changed = ctx.services.crm.execute(action=change, key=key)
    ctx.notify(words.stripe_events.lapsed_notice(p["name"]), event="contact.lapsed",
               payload={"customer": p["contact_id"], "subscription": p.get("subscription")}, dedupe="lapsed")
    return {"change": changed.model_dump(), "name": p["name"]}


def restore_status(ctx: StepContext, result: dict[str, Any]) -> dict[str, Any]:
    return {"undone": ctx.services.crm.compensate(key=ctx.action_key(ctx.intent.params["contact_id"]))}


SUBSCRIPTION_LAPSED = Workflow(
    name="subscription_lapsed",
    title="subscription cancelled",
    describe="a cancelled Stripe subscription: the contact becomes lapsed, a win-back candidate",
    triggered_by="stripe",
    steps=(
        Step("mark_lapsed", Effect.ACCESS, mark_lapsed, compensate=restore_status, title="Mark the contact lapsed",
             summarise=lambda r: f"{r['name']} is lapsed (was {r['change']['previous']})"),
    ),
)
