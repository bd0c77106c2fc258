"""Stripe's errors as opsos's: which ones a retry may fix, which are a customer's card saying no, which are final."""
from __future__ import annotations

from collections.abc import Mapping

import stripe

from connectors.errors import (
    ActionDeclined,
    ActionRejected,
    ConnectorError,
    ConnectorUnavailable,
    CredentialsRejected,
    UnknownRecord,
)


def replayed(headers: Mapping[str, str] | None) -> bool:
    """Whether Stripe answered from its idempotency store: the request was made before under this key."""
    return any(name.lower() == "idempotent-replayed" and value == "true" for name, value in (headers or {}).items())


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def translate(error: stripe.StripeError, doing: str, *, record: str = "") -> ConnectorError:
    """The opsos error for Stripe's `error` while `doing` (words such as "the charge to cus_123") on `record`.

    CardError → ActionDeclined with Stripe's decline code (the dunning retry path); rate limits, connection
    errors and Stripe's own 5xx → ConnectorUnavailable (retried, then the circuit breaker); a wrong key →
    CredentialsRejected; a missing `record` → UnknownRecord; everything else Stripe refused (InvalidRequestError,
    an idempotency conflict) → ActionRejected carrying Stripe's message, which is written for people.
    """
    said = error.user_message or "no message"
    if isinstance(error, stripe.CardError):
        details = error.error
        reason = (details.decline_code if details is not None else None) or error.code or "card_declined"
        return ActionDeclined(f"Stripe declined {doing}: {said}", reason=reason)
    if isinstance(error, stripe.RateLimitError):
        return ConnectorUnavailable(f"Stripe is rate-limiting opsos ({doing} will be tried again): {said}",
                                    retry_after=_retry_after(error.headers))
    if isinstance(error, stripe.APIConnectionError):
        return ConnectorUnavailable(f"Stripe could not be reached for {doing}: {said}")
    if isinstance(error, stripe.AuthenticationError):
        return CredentialsRejected(f"Stripe refused the API key in OPSOS_STRIPE_API_KEY: {said}",
                                   code="authentication")
    if isinstance(error, stripe.IdempotencyError):
        return ActionRejected(f"{doing} was sent to Stripe before with other details under the same key, so Stripe "
                              f"refused to treat it as new: {said}", code="idempotency_error")
    if isinstance(error, stripe.APIError) and (error.http_status or 500) >= 500:
        return ConnectorUnavailable(f"Stripe failed on its side during {doing}: {said}")
    code = getattr(error, "code", None) or type(error).__name__
    if code == "resource_missing":
        return UnknownRecord(f"Stripe has no such record for {doing}: {said}", record=record)
    return ActionRejected(f"Stripe refused {doing}: {said}", code=code)
