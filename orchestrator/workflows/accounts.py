"""Fulfillment workflows: pause, resume or refund one customer's account, proposed by the fulfillment agent.

With payments on Stripe, pausing a customer linked to a Stripe customer also pauses the collection of their live
subscriptions, and resuming resumes it: the subscriptions are looked up here, by the orchestrator, and are the only
ones the agent's proposal may name. On the sandbox (no subscriptions) a pause is the CRM's access alone.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents import AccountParams, RefundParams, fulfillment_agent
from connectors import StripePayments
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Workflow
from orchestrator.workflows.proposals import Scope, execute, propose, resolve_customer, understand


def refundable_charges(ctx: StepContext, customer: str) -> list[dict[str, Any]]:
    """The customer's succeeded charges not yet refunded, oldest first, as the payments backend has them."""
    return [{"key": c.key, "amount_cents": c.amount_cents, "at": c.at.isoformat()}
            for c in ctx.services.payments.refundable(customer)]


# Subscriptions Stripe still bills (or tries to): the ones whose collection a pause stops.
BILLED = frozenset({"active", "trialing", "past_due"})


def billed_subscriptions(ctx: StepContext, contact: dict[str, Any]) -> list[dict[str, Any]]:
    """The contact's Stripe subscriptions still billed, with whether their collection is paused; none on the sandbox
    or for a contact no sync linked to a Stripe customer."""
    payments, linked = ctx.services.payments, contact.get("stripe_customer_id")
    if not isinstance(payments, StripePayments) or not linked:
        return []
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = payments.subscriptions(customer=linked, after=after)
        found += [{"id": s.id, "status": s.status, "collection_paused": s.collection_paused, "amount_cents":
                   s.amount_cents, "interval": s.interval} for s in page.items if s.status in BILLED]
        if not page.has_more:
            return found
        after = page.after


def gather_for(operation: str) -> Callable[[StepContext], tuple[dict[str, Any], Scope]]:
    def gather(ctx: StepContext) -> tuple[dict[str, Any], Scope]:
        understood = ctx.results["understand"]
        contact = understood["customer"]
        context: dict[str, Any] = {
            "operation": operation,
            "customer": {k: contact[k] for k in ("id", "name", "email", "plan", "status", "access")},
        }
        scope = Scope(customers=[contact["id"]])
        if operation in ("pause", "resume"):
            subscriptions = billed_subscriptions(ctx, contact)
            if subscriptions:
                context["subscriptions"] = subscriptions
                scope.subscriptions = {s["id"]: contact["id"] for s in subscriptions}
        if operation == "refund":
            charges = refundable_charges(ctx, contact["id"])
            context["charges"] = charges
            context["amount_cents"] = understood["params"].get("amount_cents")
            scope.charges = {c["key"]: {"customer": contact["id"], "amount_cents": c["amount_cents"]}
                             for c in charges}
        return context, scope

    return gather


def _account_workflow(name: str, title: str, describe: str, operation: str, actions: frozenset[str],
                      params: type[AccountParams], what: str) -> Workflow:
    return Workflow(
        name=name,
        title=title,
        describe=describe,
        steps=(
            understand(name, params, title, resolve_customer("customer")),
            propose(fulfillment_agent, gather_for(operation), title="Plan the change (fulfillment agent)"),
            execute(actions, title="Carry it out", what=what),
        ),
    )


ACCOUNT_PAUSE = _account_workflow("account_pause", "account pause", "pause a customer's access",
                                  "pause", frozenset({"pause_access", "pause_collection"}), AccountParams,
                                  "Pause access")
ACCOUNT_RESUME = _account_workflow("account_resume", "account resume", "resume a paused customer's access",
                                   "resume", frozenset({"resume_access", "resume_collection"}), AccountParams,
                                   "Resume access")
REFUND_CUSTOMER = _account_workflow("refund_customer", "refund", "refund a customer's charge, once you approve",
                                    "refund", frozenset({"refund"}), RefundParams, "Refund a customer")
