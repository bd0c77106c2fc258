"""Stripe's checks: the API key by `check_payments`'s one read call, and the webhook secret's shape."""
from __future__ import annotations

from orchestrator.doctor.verdict import Verdict, failed, ok, skipped
from orchestrator.services import Services, check_payments
from orchestrator.words import doctor as said

PART, WEBHOOK_PART = "payments", "stripe webhook"


def check_stripe(services: Services) -> list[Verdict]:
    usable, line = check_payments(services)
    # check_payments's line says the fix too (where in Stripe's dashboard the key is, or the network).
    verdicts = [ok(PART, line) if usable else failed(PART, line, "")]
    secret = services.settings.stripe_webhook_secret
    if not secret:
        verdicts.append(skipped(WEBHOOK_PART, said.STRIPE_SECRET_UNSET))
    elif not secret.startswith("whsec_"):
        verdicts.append(failed(WEBHOOK_PART, said.STRIPE_SECRET_SHAPE, said.STRIPE_SECRET_FIX))
    else:
        verdicts.append(ok(WEBHOOK_PART, said.STRIPE_SECRET_SET))
    return verdicts
