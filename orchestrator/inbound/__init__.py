"""Events from outside systems that start work without a chat message: Stripe's webhooks (stored, ruled on, made
intents)."""
from orchestrator.inbound.stripe_intake import Delivery, Received, handle, parse, receive, recover, retry_dead
from orchestrator.inbound.stripe_rules import Outcome, StripeEvent

__all__ = ["Delivery", "Outcome", "Received", "StripeEvent", "handle", "parse", "receive", "recover", "retry_dead"]
