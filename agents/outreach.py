"""The outreach agent: a personal one-to-one email to a CRM contact, proposed as a `send_email` action."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from agents.base import StructuredAgent, request_prompt
from agents.proposals import Proposal, SendEmail


class OutreachProposal(Proposal):
    actions: list[SendEmail] = Field(default_factory=list)


SYSTEM = (
    "You are the outreach agent of a one-person business. Write one short, personal email to the contact "
    "in the context, for the stated purpose, using only what the context says about them. Address it to "
    "their CRM id. Cite the ids of the records and memories you used."
)
PROMPT = request_prompt(SYSTEM)

outreach_agent: StructuredAgent[OutreachProposal] = StructuredAgent("outreach.email", PROMPT, OutreachProposal)


def offline_outreach(context: dict[str, Any]) -> dict[str, Any]:
    """The offline tier's email: greeting by first name, the purpose in one line, a plain sign-off."""
    contact = context.get("recipient") or {}
    first = (str(contact.get("name") or "there").split() or ["there"])[0]
    purpose = str(context.get("purpose") or "check in and see how things are going")
    business = context.get("business", "our business")
    notes = f" Last time you mentioned: {contact['notes']}." if contact.get("notes") else ""
    body = (
        f"Hi {first},\n\n"
        f"I'm writing to {purpose}.{notes}\n\n"
        "If now is a bad time, no need to reply — I'll be here when it suits you.\n\n"
        f"Best,\n{business}\n"
    )
    cited = [f"crm:{contact['id']}"] if contact.get("id") else []
    cited += [str(m["id"]) for m in context.get("memories", []) if "id" in m]
    return {
        "actions": [{"type": "send_email", "to": contact.get("id", ""), "subject": f"Quick note for {first}",
                     "body": body}],
        "rationale": f"A short personal note to {contact.get('name', 'the contact')} to {purpose}.",
        "cited": cited,
    }
