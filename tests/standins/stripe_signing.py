"""Webhook deliveries signed the way Stripe signs them, through `stripe`'s own helper, and the events they carry."""
from __future__ import annotations

import itertools
import json
import time
from typing import Any

import stripe

_ids = itertools.count(1)


def event(type: str, obj: dict[str, Any], *, created: int, id: str | None = None) -> dict[str, Any]:
    """A snapshot event as Stripe's webhook sends it (API version 2025-03-31 and on)."""
    return {"id": id or f"evt_test_{next(_ids)}", "object": "event", "api_version": "2025-03-31.basil",
            "created": created, "livemode": False, "pending_webhooks": 1, "type": type, "data": {"object": obj}}


def signed(payload: dict[str, Any] | str, secret: str, *, at: int | None = None) -> tuple[str, dict[str, str]]:
    """The body and headers of a delivery: `Stripe-Signature: t=<at>,v1=HMAC-SHA256(secret, "<at>.<body>")`."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=at or int(time.time()))
    return body, {"Stripe-Signature": header, "Content-Type": "application/json"}


def invoice(*, customer: str, subscription: str, amount_cents: int = 2900, attempt: int = 1,
            next_attempt: int | None = None, paid: bool = False, billing_reason: str = "subscription_cycle",
            email: str | None = None, name: str | None = None) -> dict[str, Any]:
    return {"id": f"in_{next(_ids)}", "object": "invoice", "customer": customer, "customer_email": email,
            "customer_name": name, "currency": "usd", "amount_due": amount_cents,
            "amount_paid": amount_cents if paid else 0, "attempt_count": attempt, "next_payment_attempt": next_attempt,
            "billing_reason": billing_reason, "status": "paid" if paid else "open",
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": subscription}},
            "lines": {"object": "list", "data": [{"price": {"recurring": {"interval": "month"}}}]}}


def checkout_session(*, customer: str, subscription: str, email: str, name: str,
                     mode: str = "subscription") -> dict[str, Any]:
    return {"id": f"cs_test_{next(_ids)}", "object": "checkout.session", "mode": mode, "customer": customer,
            "subscription": subscription, "amount_total": 2900, "currency": "usd", "status": "complete",
            "customer_details": {"email": email, "name": name}, "metadata": {}}


def subscription(*, customer: str, id: str, status: str = "canceled") -> dict[str, Any]:
    return {"id": id, "object": "subscription", "customer": customer, "status": status}
