"""Payments through the operator's Stripe account, with Stripe's own library: the production payments backend."""
from connectors.stripe.payments import StripePayments, stripe_client, stripe_key
from connectors.stripe.records import (
    CancelSubscription,
    Page,
    PauseCollection,
    ResumeCollection,
    StripeCustomer,
    StripeInvoice,
    StripeSubscription,
    SubscriptionChanged,
)

__all__ = [
    "CancelSubscription",
    "Page",
    "PauseCollection",
    "ResumeCollection",
    "StripeCustomer",
    "StripeInvoice",
    "StripePayments",
    "StripeSubscription",
    "SubscriptionChanged",
    "stripe_client",
    "stripe_key",
]
