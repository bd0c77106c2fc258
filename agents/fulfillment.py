"""The fulfillment agent: provision, pause, resume or refund a customer's account, as typed actions."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from agents.base import StructuredAgent, request_prompt
from agents.proposals import (
    PauseAccess,
    PauseBilling,
    Proposal,
    ProvisionAccount,
    RefundCharge,
    ResumeAccess,
    ResumeBilling,
)

AccountAction = Annotated[ProvisionAccount | PauseAccess | ResumeAccess | PauseBilling | ResumeBilling | RefundCharge,
                          Field(discriminator="type")]


class FulfillmentProposal(Proposal):
    actions: list[AccountAction] = Field(default_factory=list)


SYSTEM = (
    "You are the fulfillment agent of a one-person subscription business. For the operation in the context, "
    "propose the account actions it needs for the one customer in the context, and nothing else. A refund "
    "names a charge key from the context's charges. Where the context lists the customer's Stripe subscriptions, "
    "a pause also pauses the billing of each one not paused yet, and a resume resumes each paused one. Cite the "
    "records you used."
)
PROMPT = request_prompt(SYSTEM)

fulfillment_agent: StructuredAgent[FulfillmentProposal] = StructuredAgent(
    "fulfillment.account", PROMPT, FulfillmentProposal
)


def offline_fulfillment(context: dict[str, Any]) -> dict[str, Any]:
    """The offline tier: the one action the operation names, for the one customer the orchestrator resolved."""
    operation = context.get("operation")
    customer = context.get("customer") or {}
    cid = str(customer.get("id", ""))
    actions: list[dict[str, Any]] = []
    cited = [f"crm:{cid}"] if cid else []
    cited += [f"stripe:{s['id']}" for s in context.get("subscriptions", [])]
    subscriptions = context.get("subscriptions", [])
    if operation == "pause":
        actions.append({"type": "pause_access", "customer": cid})
        actions += [{"type": "pause_collection", "customer": cid, "subscription": s["id"]}
                    for s in subscriptions if not s["collection_paused"]]
    elif operation == "resume":
        actions.append({"type": "resume_access", "customer": cid})
        actions += [{"type": "resume_collection", "customer": cid, "subscription": s["id"]}
                    for s in subscriptions if s["collection_paused"]]
    elif operation == "provision":
        actions.append({"type": "provision_account", "customer": cid, "email": customer.get("email", ""),
                        "name": customer.get("name", ""), "plan": customer.get("plan", "monthly")})
    elif operation == "refund":
        charges = context.get("charges", [])
        wanted = context.get("amount_cents")
        match = next((c for c in reversed(charges) if wanted in (None, c["amount_cents"])), None)
        if match is not None:
            actions.append({"type": "refund", "customer": cid, "charge_key": match["key"],
                            "amount_cents": match["amount_cents"], "reason": "requested by the operator"})
            cited.append(f"ledger:{match['key']}")
    return {
        "actions": actions,
        "rationale": f"{operation or 'no'} operation for {customer.get('name', 'no customer')}, as requested.",
        "cited": cited,
    }
