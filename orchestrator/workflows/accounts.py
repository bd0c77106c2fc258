"""Fulfillment workflows: pause, resume or refund one customer's account, proposed by the fulfillment agent."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents import AccountParams, RefundParams, fulfillment_agent
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Workflow
from orchestrator.workflows.proposals import Scope, execute, propose, resolve_customer, understand


def refundable_charges(ctx: StepContext, customer: str) -> list[dict[str, Any]]:
    """The customer's succeeded charges not yet refunded, oldest first, as the payments backend has them."""
    return [{"key": c.key, "amount_cents": c.amount_cents, "at": c.at.isoformat()}
            for c in ctx.services.payments.refundable(customer)]


def gather_for(operation: str) -> Callable[[StepContext], tuple[dict[str, Any], Scope]]:
    def gather(ctx: StepContext) -> tuple[dict[str, Any], Scope]:
        understood = ctx.results["understand"]
        contact = understood["customer"]
        context: dict[str, Any] = {
            "operation": operation,
            "customer": {k: contact[k] for k in ("id", "name", "email", "plan", "status", "access")},
        }
        scope = Scope(customers=[contact["id"]])
        if operation == "refund":
            charges = refundable_charges(ctx, contact["id"])
            context["charges"] = charges
            context["amount_cents"] = understood["params"].get("amount_cents")
            scope.charges = {c["key"]: {"customer": contact["id"], "amount_cents": c["amount_cents"]}
                             for c in charges}
        return context, scope

    return gather


def _account_workflow(name: str, title: str, describe: str, operation: str, action: str,
                      params: type[AccountParams], what: str) -> Workflow:
    return Workflow(
        name=name,
        title=title,
        describe=describe,
        steps=(
            understand(name, params, title, resolve_customer("customer")),
            propose(fulfillment_agent, gather_for(operation), title="Plan the change (fulfillment agent)"),
            execute(frozenset({action}), title="Carry it out", what=what),
        ),
    )


ACCOUNT_PAUSE = _account_workflow("account_pause", "account pause", "pause a customer's access",
                                  "pause", "pause_access", AccountParams, "Pause access")
ACCOUNT_RESUME = _account_workflow("account_resume", "account resume", "resume a paused customer's access",
                                   "resume", "resume_access", AccountParams, "Resume access")
REFUND_CUSTOMER = _account_workflow("refund_customer", "refund", "refund a customer's charge, once you approve",
                                    "refund", "refund", RefundParams, "Refund a customer")
