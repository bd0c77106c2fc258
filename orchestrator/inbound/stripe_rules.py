"""Which Stripe event becomes which intent: the event read into facts, and the rule that rules on them (pure).

    invoice.payment_failed                       → dunning (tell the operator; pause access after the last attempt)
    checkout.session.completed (subscription),
    invoice.paid (subscription_create)           → fulfilment (provision the account, welcome email)
    customer.subscription.deleted                → lapsed (a win-back candidate)
    invoice.paid (a renewal)                     → renewed: reported, no intent

Anything else, an event older than one already applied to the same subscription, and an event for a customer
the CRM does not know, is recorded with its outcome and reported; nothing is dropped.
"""
from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from connectors import Contact


class StripeEvent(BaseModel):
    """A Stripe event as its webhook delivers it (a snapshot event); the object it carries is kept as sent."""

    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    created: datetime
    data: dict[str, Any]

    @property
    def object(self) -> dict[str, Any]:
        found = self.data.get("object")
        return found if isinstance(found, dict) else {}


class Outcome(StrEnum):
    DUNNING = "dunning"
    FULFILMENT = "fulfilment"
    LAPSED = "lapsed"
    RENEWED = "renewed"
    ALREADY_FULFILLED = "already_fulfilled"
    OUT_OF_ORDER = "out_of_order"
    UNKNOWN_CUSTOMER = "unknown_customer"
    NOT_HANDLED = "not_handled"


# The outcomes that start a run, with their workflow (the intent's kind is the workflow's name).
WORKFLOW_OF: dict[Outcome, str] = {Outcome.DUNNING: "dunning", Outcome.FULFILMENT: "fulfilment",
                                   Outcome.LAPSED: "subscription_lapsed"}
FULFILLING = ("checkout.session.completed", "invoice.paid")


class Facts(BaseModel):
    """What an event says that the rules use, whatever object it carries."""

    object_key: str
    customer: str | None = None
    email: str | None = None
    name: str | None = None
    amount_cents: int | None = None
    currency: str = "usd"
    attempt: int | None = None
    next_attempt: datetime | None = None
    subscription: str | None = None
    new_subscription: bool = False
    plan: str = "monthly"


class Ruling(BaseModel):
    outcome: Outcome
    # Whether the event now stands for its object's state: later-arriving older events are out of order against it.
    applies: bool
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def workflow(self) -> str | None:
        return WORKFLOW_OF.get(self.outcome)


def _id(value: Any) -> str | None:
    """An id Stripe sends either as a string or, expanded, as the object itself."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _subscription(event: StripeEvent) -> str | None:
    obj = event.object
    if event.type.startswith("customer.subscription."):
        return _id(obj.get("id"))
    # Invoices name it at the top in older API versions, under `parent.subscription_details` since 2025-03.
    details = ((obj.get("parent") or {}).get("subscription_details") or {})
    return _id(obj.get("subscription")) or _id(details.get("subscription"))


def _plan(obj: dict[str, Any]) -> str:
    if isinstance(obj.get("metadata"), dict) and obj["metadata"].get("plan"):
        return str(obj["metadata"]["plan"])
    lines = ((obj.get("lines") or {}).get("data") or [{}])
    price = (lines[0] or {}).get("price") or {}
    return "annual" if (price.get("recurring") or {}).get("interval") == "year" else "monthly"


def read(event: StripeEvent) -> Facts:
    """The facts of `event` (pure); fields its object lacks stay None."""
    obj = event.object
    details = obj.get("customer_details") or {}
    subscription = _subscription(event)
    next_attempt = obj.get("next_payment_attempt")
    amount = {"invoice.payment_failed": obj.get("amount_due"), "invoice.paid": obj.get("amount_paid"),
              "checkout.session.completed": obj.get("amount_total")}.get(event.type)
    new = (obj.get("mode") == "subscription" if event.type == "checkout.session.completed"
           else obj.get("billing_reason") == "subscription_create")
    return Facts(
        object_key=subscription or _id(obj.get("id")) or event.id,
        customer=_id(obj.get("customer")),
        email=obj.get("customer_email") or details.get("email"),
        name=obj.get("customer_name") or details.get("name"),
        amount_cents=amount if isinstance(amount, int) else None,
        currency=str(obj.get("currency") or "usd"),
        attempt=obj.get("attempt_count") if isinstance(obj.get("attempt_count"), int) else None,
        next_attempt=datetime.fromtimestamp(next_attempt, UTC) if isinstance(next_attempt, int) else None,
        subscription=subscription,
        new_subscription=new,
        plan=_plan(obj),
    )


def decide(event: StripeEvent, facts: Facts, *, contact: Contact | None, newest_applied: datetime | None,
           fulfilled: bool) -> Ruling:
    """The ruling on `event` (pure). `contact` is the CRM's customer the event names (None: unknown),
    `newest_applied` the `created` of the latest event applied to the same object, `fulfilled` whether a
    fulfilment was already applied to it (Stripe sends both a checkout and a first invoice for one sign-up)."""
    kind = event.type
    fulfilling = kind in FULFILLING and facts.new_subscription
    if fulfilling and fulfilled:
        return Ruling(outcome=Outcome.ALREADY_FULFILLED, applies=False)
    if not (fulfilling or kind in ("invoice.payment_failed", "invoice.paid", "customer.subscription.deleted")):
        return Ruling(outcome=Outcome.NOT_HANDLED, applies=False)
    if newest_applied is not None and event.created < newest_applied:
        return Ruling(outcome=Outcome.OUT_OF_ORDER, applies=False, params={"newest_applied": newest_applied})
    if fulfilling:
        contact_id = contact.id if contact is not None else facts.customer
        email = contact.email if contact is not None else facts.email
        if contact_id is None or not email:
            return Ruling(outcome=Outcome.UNKNOWN_CUSTOMER, applies=False)
        name = contact.name if contact is not None else (facts.name or email.split("@")[0])
        return Ruling(outcome=Outcome.FULFILMENT, applies=True, params={
            "contact_id": contact_id, "email": email, "name": name, "plan": facts.plan,
            "subscription": facts.subscription, "new_contact": contact is None})
    if contact is None:
        return Ruling(outcome=Outcome.UNKNOWN_CUSTOMER, applies=False)
    who = {"contact_id": contact.id, "name": contact.name, "subscription": facts.subscription}
    if kind == "invoice.paid":
        return Ruling(outcome=Outcome.RENEWED, applies=True, params={**who, "amount_cents": facts.amount_cents or 0})
    if kind == "customer.subscription.deleted":
        return Ruling(outcome=Outcome.LAPSED, applies=True, params=who)
    return Ruling(outcome=Outcome.DUNNING, applies=True, params={
        **who, "amount_cents": facts.amount_cents or 0, "currency": facts.currency, "attempt": facts.attempt or 1,
        # Stripe sets no next attempt once its retries (Smart Retries or the schedule) are used up: the last one.
        "final": facts.next_attempt is None,
        "next_attempt": facts.next_attempt.isoformat() if facts.next_attempt else None,
        "invoice": event.object.get("id")})
