"""The content agent: drafts campaigns (subject, body, offer) from the intent and its context snapshot."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agents.base import StructuredAgent, request_prompt


class CampaignDraft(BaseModel):
    """A win-back email campaign: one subject and body for all recipients, personalised by {first_name}."""

    subject: str = Field(description="Email subject line, under 70 characters")
    body: str = Field(description="Plain-text email body; {first_name} is replaced per recipient")
    offer: str = Field(description="The offer in a few words, e.g. '30% off for 3 months'")
    rationale: str = Field(description="Why this draft fits the goal and the audience, in one or two sentences")
    cited: list[str] = Field(default_factory=list, description="Ids of the memories and records the draft used")


SYSTEM = (
    "You are the content agent of a one-person subscription business. Draft a short, warm, honest "
    "win-back email. Use only facts from the context. Keep {{first_name}} as a placeholder. "
    "Cite the ids of the context items you used."
)

PROMPT = request_prompt(SYSTEM)

campaign_agent: StructuredAgent[CampaignDraft] = StructuredAgent("content.campaign", PROMPT, CampaignDraft)


def offline_campaign(context: dict[str, Any]) -> dict[str, Any]:
    """The offline tier's template for CampaignDraft: fills the business's own numbers into a fixed draft."""
    business = context.get("business", "our newsletter")
    discount = int(context.get("discount_percent", 30))
    months = int(context.get("discount_months", 3))
    audience = context.get("audience", {})
    count = int(audience.get("count", 0))
    offer = f"{discount}% off for {months} months"
    body = (
        "Hi {first_name},\n\n"
        f"It's been a while since you were part of {business}, and we miss having you around. "
        "Since you left we've kept publishing every week, and the archive has grown.\n\n"
        f"If you'd like to come back, here is {offer}: reply to this email or reactivate from your account page, "
        "and the discount applies automatically.\n\n"
        "Either way, thank you for the time you spent with us.\n"
    )
    cited = [str(item["id"]) for item in context.get("memories", []) if "id" in item]
    cited += [f"crm:{contact_id}" for contact_id in audience.get("ids", [])]
    return {
        "subject": f"We miss you, {{first_name}} — {offer} to come back",
        "body": body,
        "offer": offer,
        "rationale": (
            f"{count} lapsed subscribers; a time-limited discount is the cheapest lever on MRR, "
            "and a personal tone suits a one-person business."
        ),
        "cited": cited,
    }
