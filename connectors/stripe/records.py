"""What opsos reads from Stripe and the subscription actions it takes there, as pydantic models of its own.

Stripe's objects are parsed into these at the boundary, so the rest of opsos never holds a `StripeObject`,
and a field Stripe moved between API versions (an invoice's subscription) is looked for in one place.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from connectors.payments import PaymentLine

T = TypeVar("T", bound=BaseModel)


def _when(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


class PauseCollection(BaseModel):
    """Stop collecting a subscription's invoices (the subscriber keeps the subscription); undone by resuming."""

    subscription: str
    # Stripe's pause behaviours: the invoices made while paused are voided, kept as drafts, or left uncollectible.
    behavior: Literal["void", "keep_as_draft", "mark_uncollectible"] = "void"


class ResumeCollection(BaseModel):
    subscription: str


class CancelSubscription(BaseModel):
    subscription: str


class SubscriptionChanged(BaseModel):
    key: str
    subscription: str
    customer: str
    status: str
    collection_paused: bool
    duplicate: bool


class StripeCustomer(BaseModel):
    id: str
    email: str | None = None
    name: str | None = None
    created: datetime | None = None
    delinquent: bool = False
    default_payment_method: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> StripeCustomer:
        settings = raw.get("invoice_settings") or {}
        method = settings.get("default_payment_method")
        return cls(id=raw["id"], email=raw.get("email"), name=raw.get("name"), created=_when(raw.get("created")),
                   delinquent=bool(raw.get("delinquent")), metadata=raw.get("metadata") or {},
                   default_payment_method=method["id"] if isinstance(method, dict) else method)


class StripeSubscription(BaseModel):
    id: str
    customer: str
    status: str
    collection_paused: bool = False
    cancel_at_period_end: bool = False
    # The first item's price: what a one-plan subscription costs per interval.
    price: str | None = None
    amount_cents: int | None = None
    currency: str | None = None
    interval: str | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> StripeSubscription:
        items = (raw.get("items") or {}).get("data") or [{}]
        price = items[0].get("price") or {}
        customer = raw["customer"]
        return cls(id=raw["id"], customer=customer["id"] if isinstance(customer, dict) else customer,
                   status=raw["status"], collection_paused=raw.get("pause_collection") is not None,
                   cancel_at_period_end=bool(raw.get("cancel_at_period_end")), price=price.get("id"),
                   amount_cents=price.get("unit_amount"), currency=price.get("currency"),
                   interval=(price.get("recurring") or {}).get("interval"))


class StripeInvoice(BaseModel):
    id: str
    customer: str
    status: str
    subscription: str | None = None
    amount_due: int = 0
    amount_remaining: int = 0
    currency: str = "usd"
    attempt_count: int = 0
    next_payment_attempt: datetime | None = None
    hosted_invoice_url: str | None = None

    @property
    def failed(self) -> bool:
        """Open with at least one collection attempt behind it: Stripe tried to charge and could not."""
        return self.status == "open" and self.attempt_count > 0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> StripeInvoice:
        # Since API version 2025-03-31 the subscription sits under `parent`; before, on the invoice itself.
        details = ((raw.get("parent") or {}).get("subscription_details") or {})
        subscription = details.get("subscription") or raw.get("subscription")
        return cls(id=raw["id"], customer=raw["customer"], status=raw["status"],
                   subscription=subscription["id"] if isinstance(subscription, dict) else subscription,
                   amount_due=raw.get("amount_due") or 0, amount_remaining=raw.get("amount_remaining") or 0,
                   currency=raw.get("currency") or "usd", attempt_count=raw.get("attempt_count") or 0,
                   next_payment_attempt=_when(raw.get("next_payment_attempt")),
                   hosted_invoice_url=raw.get("hosted_invoice_url"))


def charge_line(raw: dict[str, Any]) -> PaymentLine | None:
    """A Stripe Charge as money in, at its gross amount (refunds are lines of their own); None unless it succeeded
    (a failed or pending charge moved no money)."""
    if raw.get("status") != "succeeded":
        return None
    described = raw.get("description")
    return PaymentLine(id=raw["id"], at=datetime.fromtimestamp(raw["created"], UTC), amount_cents=raw["amount"],
                       currency=raw.get("currency") or "usd", customer=_id(raw.get("customer")) or "",
                       description=f"charge: {described}" if described else "charge")


def refund_line(raw: dict[str, Any]) -> PaymentLine | None:
    """A Stripe Refund as money out (negative), its customer read from its charge (expanded, `data.charge`); None
    unless it succeeded (a pending or failed refund has not left the account)."""
    if raw.get("status") != "succeeded":
        return None
    charge = raw.get("charge")
    customer = _id(charge.get("customer")) if isinstance(charge, dict) else None
    return PaymentLine(id=raw["id"], at=datetime.fromtimestamp(raw["created"], UTC), amount_cents=-raw["amount"],
                       currency=raw.get("currency") or "usd", customer=customer or "",
                       description=f"refund of {_id(charge)}")


def _id(value: Any) -> str | None:
    """An expandable field's id, whether Stripe sent the id or (expanded) the object."""
    return value.get("id") if isinstance(value, dict) else value


class Page(BaseModel, Generic[T]):
    """One page of a Stripe list, oldest call first; pass `after` back to resume where it ended."""

    items: list[T]
    has_more: bool
    after: str | None
