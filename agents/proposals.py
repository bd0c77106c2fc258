"""Proposals: the typed actions a specialist agent may ask for, its rationale and the records it used.

A proposal is data, never a deed: the orchestrator checks each action against policy, asks for the
approvals it needs and executes it through a connector. Nothing here can reach the outside world.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

CATEGORIES = ("revenue", "refunds", "software", "hosting", "marketing", "contractors", "fees", "office", "other")
Category = Literal["revenue", "refunds", "software", "hosting", "marketing", "contractors", "fees", "office", "other"]


class SendEmail(BaseModel):
    """Email one contact of the CRM."""

    type: Literal["send_email"] = "send_email"
    to: str = Field(description="The CRM contact id of the recipient, e.g. 'c-ana'")
    subject: str
    body: str


class ChargeCustomer(BaseModel):
    type: Literal["charge"] = "charge"
    customer: str = Field(description="CRM contact id")
    amount_cents: int = Field(gt=0)
    description: str = ""


class RefundCharge(BaseModel):
    """Refund one earlier charge, identified by its payment key, in full."""

    type: Literal["refund"] = "refund"
    customer: str = Field(description="CRM contact id")
    charge_key: str = Field(description="The key of the charge to refund, from the context's charges")
    amount_cents: int = Field(gt=0)
    reason: str = ""


class PauseAccess(BaseModel):
    type: Literal["pause_access"] = "pause_access"
    customer: str = Field(description="CRM contact id")


class ResumeAccess(BaseModel):
    type: Literal["resume_access"] = "resume_access"
    customer: str = Field(description="CRM contact id")


class PauseBilling(BaseModel):
    """Stop collecting a Stripe subscription's payments (the customer keeps it); undone by resuming."""

    type: Literal["pause_collection"] = "pause_collection"
    customer: str = Field(description="CRM contact id")
    subscription: str = Field(description="The Stripe subscription id, from the context's subscriptions")


class ResumeBilling(BaseModel):
    type: Literal["resume_collection"] = "resume_collection"
    customer: str = Field(description="CRM contact id")
    subscription: str = Field(description="The Stripe subscription id, from the context's subscriptions")


class CancelSubscription(BaseModel):
    """End a Stripe subscription; it cannot be taken back."""

    type: Literal["cancel_subscription"] = "cancel_subscription"
    customer: str = Field(description="CRM contact id")
    subscription: str = Field(description="The Stripe subscription id, from the context's subscriptions")


class ProvisionAccount(BaseModel):
    type: Literal["provision_account"] = "provision_account"
    customer: str = Field(description="CRM contact id, new or existing")
    email: str
    name: str
    plan: str = "monthly"


class PostContent(BaseModel):
    """A finished post or newsletter issue, ready to publish."""

    type: Literal["post_content"] = "post_content"
    channel: Literal["blog", "newsletter", "social"]
    title: str
    body: str


class Categorise(BaseModel):
    type: Literal["categorise"] = "categorise"
    transaction_id: int = Field(description="Id of a transaction from the context")
    category: Category


AnyAction = Annotated[
    SendEmail | ChargeCustomer | RefundCharge | PauseAccess | ResumeAccess | PauseBilling | ResumeBilling
    | CancelSubscription | ProvisionAccount | PostContent | Categorise,
    Field(discriminator="type"),
]
ACTION_TYPES = ("send_email", "charge", "refund", "pause_access", "resume_access", "pause_collection",
                "resume_collection", "cancel_subscription", "provision_account", "post_content", "categorise")
# The actions on a Stripe subscription: carried only when payments run on Stripe.
SUBSCRIPTION_ACTIONS = frozenset({"pause_collection", "resume_collection", "cancel_subscription"})


class Proposal(BaseModel):
    """What every specialist returns; subclasses narrow `actions` to the types that agent may propose."""

    actions: list[AnyAction] = Field(default_factory=list)
    rationale: str = Field(description="Why these actions, in one or two sentences")
    cited: list[str] = Field(default_factory=list, description="Ids of the memories and records used")
