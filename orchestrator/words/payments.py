"""What the operator is told about the payments backend: which one runs, and whether Stripe takes the key."""
from __future__ import annotations

SANDBOX = ("Payments run on the sandbox ledger (no real money). Set OPSOS_PAYMENTS=stripe and OPSOS_STRIPE_API_KEY "
           "to use your Stripe account.")


def stripe_key_works(mode: str) -> str:
    live = "live mode: charges and refunds move real money" if mode == "live" else "test mode: no real money moves"
    return f"Stripe accepted the API key ({live})."


def stripe_key_rejected(said: str) -> str:
    """`said`: what the connector reported, Stripe's own words included."""
    return (f"{said}. Copy a secret key (sk_…) or a restricted key (rk_…) from Stripe's dashboard, "
            "Developers → API keys, and try again.")


def stripe_unreachable(said: str) -> str:
    return f"The Stripe key could not be checked: {said}. Check the network (or OPSOS_STRIPE_API_BASE)."


def needs_stripe(line: str) -> str:
    """Why a subscription action is refused on the sandbox, which has no subscriptions to pause or cancel."""
    return (f"{line}: subscriptions are paused, resumed and cancelled at Stripe, and payments run on the sandbox "
            "(set OPSOS_PAYMENTS=stripe)")


def payments_imported(count: int, source: str) -> str:
    """The bookkeeping import step in a line: how many payments were new, and from where."""
    where = "Stripe (charges and refunds)" if source == "stripe" else "the sandbox ledger"
    return f"{count} new payment{'s' if count != 1 else ''} from {where}"
