"""Fulfilment: a new Stripe subscription; the account is provisioned (once per key) and the customer welcomed by
email, with the approvals policy asks for. Provisioning is undone by suspending (or restoring) the account."""
from __future__ import annotations

from typing import Any

from connectors import OutgoingEmail, Provision
from orchestrator import words
from orchestrator.policy import Effect
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Step, Workflow


def provision(ctx: StepContext) -> dict[str, Any]:
    p = ctx.intent.params
    # A customer new to opsos by Stripe id is named by that id (see `stripe_rules.decide`): the contact made, or
    # the one already at their address (imported as a lead), is linked to it.
    linked = p["contact_id"] if p.get("new_contact") else None
    action = Provision(contact_id=p["contact_id"], email=p["email"], name=p["name"], plan=p["plan"],
                       stripe_customer_id=linked)
    ctx.require_approval(effect=Effect.ACCESS, action=action.model_dump(), ask=words.stripe_events.provision_request(
        p["name"], p["email"], p["plan"]))
    key = ctx.action_key(p["contact_id"])
    ctx.link_action(key)
    done = ctx.services.crm.execute(action=action, key=key)
    return {"provisioned": done.model_dump(), "name": p["name"], "key": key, "contact_id": done.contact_id}


def unprovision(ctx: StepContext, result: dict[str, Any]) -> dict[str, Any]:
    return {"undone": ctx.services.crm.compensate(key=ctx.action_key(ctx.intent.params["contact_id"]))}


def welcome(ctx: StepContext) -> dict[str, Any]:
    p = ctx.intent.params
    subject, body = words.stripe_events.welcome_email(p["name"], p["plan"])
    email = OutgoingEmail(to=p["email"], subject=subject, body=body, sender=ctx.services.settings.email_from)
    ctx.require_approval(effect=Effect.EMAIL_CUSTOMERS, action=email.model_dump(),
                         ask=words.stripe_events.welcome_request(p["name"], p["email"], subject, body))
    key = ctx.action_key(p["contact_id"])
    ctx.link_action(key)
    sent = ctx.services.email.execute(action=email, key=key)
    return {"sent": sent.model_dump(), "to": p["email"]}


FULFILMENT = Workflow(
    name="fulfilment",
    title="fulfilment",
    describe="a new Stripe subscription: provision the account, send a welcome email",
    triggered_by="stripe",
    steps=(
        Step("provision", Effect.ACCESS, provision, compensate=unprovision, title="Provision the account",
             summarise=lambda r: words.stripe_events.provisioned_summary(r["name"], r["provisioned"]["created"])),
        Step("welcome", Effect.EMAIL_CUSTOMERS, welcome, title="Send the welcome email",
             summarise=lambda r: f"welcome sent to {r['to']}"),
    ),
)
