"""The outreach workflow: a personal email to one CRM contact, drafted by the outreach agent, sent once approved."""
from __future__ import annotations

from typing import Any

from agents import OutreachParams, outreach_agent
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Workflow
from orchestrator.workflows.proposals import Scope, execute, propose, resolve_customer, understand


def gather(ctx: StepContext) -> tuple[dict[str, Any], Scope]:
    understood = ctx.results["understand"]
    contact = understood["customer"]
    return {
        "recipient": {k: contact[k] for k in ("id", "name", "email", "plan", "status", "notes")},
        "purpose": understood["params"].get("purpose"),
        "business": ctx.intent.params.get("business", "our business"),
    }, Scope(customers=[contact["id"]])


def question(ctx: StepContext) -> str:
    # What we know of this person: the customer's name leads the question, the request's purpose follows.
    return f"{ctx.results['understand']['customer']['name']}: {ctx.intent.request}"


OUTREACH_EMAIL = Workflow(
    name="outreach_email",
    title="outreach email",
    describe="write a personal email to one contact and send it once you approve",
    steps=(
        understand("outreach_email", OutreachParams, "email", resolve_customer("recipient")),
        propose(outreach_agent, gather, title="Draft the email (outreach agent)", question=question),
        execute(frozenset({"send_email"}), title="Send the email", what="Send a personal email"),
    ),
)
