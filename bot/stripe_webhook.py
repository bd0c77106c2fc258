"""The Stripe webhook endpoint: a signed event in, stored once, answered; the thinking happens after, in a job.

Stripe signs each delivery (`Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")`); `stripe.Webhook` checks
it, and its age against the tolerance, before anything in the body is read. The answer tells Stripe what to do:
2xx once the event is stored (a redelivery of a stored one too, and a signed one opsos cannot read, which is
stored as unreadable: Stripe would only send the same body again), 400 for what it must not send again (forged,
stale, not JSON or without an event id), 5xx when opsos could not store it, so Stripe delivers it again later.
"""
from __future__ import annotations

import asyncio
from typing import Any

import stripe
import structlog
from aiohttp import web

from orchestrator import Operations, inbound

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "Stripe-Signature"


def webhook_endpoint(ops: Operations, secret: str, *, tolerance: int) -> Any:
    """The aiohttp handler for /stripe/webhook, verifying with `secret` (whsec_…) and `tolerance` seconds."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            # Verification first: the signature and its timestamp, before a byte is parsed. Not construct_event, which
            # then builds Stripe's object and fails on a signed body that is JSON but not an object (a 500).
            stripe.WebhookSignature.verify_header(body, request.headers.get(SIGNATURE_HEADER), secret, tolerance)
        except stripe.SignatureVerificationError as error:
            log.warning("stripe.webhook_refused", reason=str(error)[:120])
            return web.json_response({"error": "bad signature"}, status=400)
        except ValueError:
            return web.json_response({"error": "not a Stripe event"}, status=400)
        try:
            delivery = inbound.parse(body)
        except ValueError:
            return web.json_response({"error": "not a Stripe event"}, status=400)
        try:
            received = await asyncio.to_thread(inbound.receive, ops.services, delivery)
        except Exception as error:  # any failure to store: Stripe must send it again
            log.error("stripe.event_not_stored", event_id=delivery.event_id, error=f"{type(error).__name__}: {error}")
            return web.json_response({"error": "not stored, send it again"}, status=503)
        return web.json_response({"received": True, "duplicate": not received.new})

    return handle


__all__ = ["SIGNATURE_HEADER", "webhook_endpoint"]
