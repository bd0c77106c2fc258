"""Stripe webhooks into the real aiohttp app, signed through `stripe`'s own helper: verified, stored once, ruled on
by a job, and the operator told in their home channel."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.server import build_web_app
from connectors import Contact
from orchestrator import Decision, Operations
from tests.orchestrator.helpers import OPERATOR, count, operations, pending_approval, run_state
from tests.standins.stripe_signing import checkout_session, event, invoice, signed, subscription

SECRET = "whsec_test_opsos"
HOME = ("slack", "C-HOME")
ANA = Contact(id="cus_ana", email="ana@example.com", name="Ana Souza", plan="monthly", status="active",
              monthly_cents=2900)
T0 = 1_760_000_000


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"stripe_webhook_secret": SECRET, "home_channel": ":".join(HOME)})


@dataclass
class StripeWorld:
    ops: Operations
    http: TestClient

    async def post(self, payload: dict[str, Any] | str, *, secret: str = SECRET, at: int | None = None,
                   headers: dict[str, str] | None = None) -> int:
        body, signed_headers = signed(payload, secret, at=at)
        response = await self.http.post("/stripe/webhook", data=body, headers=headers or signed_headers)
        return response.status

    def told(self) -> list[str]:
        """Every message queued for the operator's home channel, as plain text."""
        with self.ops.pool.connection() as conn:
            rows = conn.execute("SELECT message FROM outbox WHERE channel = %s AND conversation = %s ORDER BY id",
                                HOME).fetchall()
        return [row["message"]["title"] + "\n" + row["message"].get("text", "") for row in rows]

    def stored(self, event_id: str) -> dict[str, Any]:
        with self.ops.pool.connection() as conn:
            return conn.execute("SELECT * FROM stripe_events WHERE id = %s", (event_id,)).fetchone()


@pytest.fixture
async def stripe_app(services, settings) -> AsyncIterator[StripeWorld]:
    ops = operations(services)
    app = build_web_app(ops, settings, deliver=False)
    async with TestClient(TestServer(app)) as http:
        yield StripeWorld(ops=ops, http=http)


def failed(*, attempt: int = 1, final: bool = False, created: int = T0, customer: str = "cus_ana",
           email: str | None = None) -> dict[str, Any]:
    next_attempt = None if final else created + 3 * 86400
    return event("invoice.payment_failed", invoice(customer=customer, subscription="sub_ana", attempt=attempt,
                                                   next_attempt=next_attempt, email=email), created=created)


async def test_a_forged_signature_is_refused_and_nothing_is_stored(stripe_app, db) -> None:
    assert await stripe_app.post(failed(), secret="whsec_someone_else") == 400
    assert await stripe_app.post(failed(), headers={"Content-Type": "application/json"}) == 400
    assert count(db, "stripe_events") == 0


async def test_a_stale_signature_outside_the_tolerance_is_refused(stripe_app, db) -> None:
    """A delivery signed ten minutes ago (tolerance 300 s) is a replay: 400, nothing stored."""
    assert await stripe_app.post(failed(), at=int(time.time()) - 600) == 400
    assert count(db, "stripe_events") == 0


async def test_a_signed_body_that_is_no_event_is_refused(stripe_app, db) -> None:
    """Not an object, or no event id to store it by: nothing Stripe could usefully send again."""
    for body in ('{"type": "invoice.paid"}', '["evt_x"]', '{"id": ""}'):
        assert await stripe_app.post(body) == 400
    assert count(db, "stripe_events") == 0


async def test_a_signed_event_that_does_not_fit_the_model_is_stored_unreadable_and_reported_once(
        stripe_app, db, work) -> None:
    """Answered 200 (a 400 would have Stripe send it for days, and opsos lose it): kept as sent, told once."""
    body = '{"id": "evt_odd", "type": "invoice.paid", "created": "yesterday", "data": {"object": {}}}'
    assert await stripe_app.post(body) == 200
    assert await stripe_app.post(body) == 200
    work()
    stored = stripe_app.stored("evt_odd")
    assert (stored["state"], stored["type"], stored["payload"]["created"]) == ("unreadable", "invoice.paid",
                                                                               "yesterday")
    (told,) = stripe_app.told()
    assert told.startswith("Stripe event I could not read, recorded: invoice.paid (evt_odd)") and "created" in told


async def test_a_signed_event_with_a_field_of_an_odd_shape_is_stored_unreadable_not_answered_500(
        stripe_app, db, work) -> None:
    """Review finding: a string where an object belongs passed the model and broke reading the event's facts, which
    answered 500 (Stripe retries for days) and stored nothing."""
    body = ('{"id": "evt_shape", "type": "checkout.session.completed", "created": 1760000000, "data": {"object": '
            '{"object": "checkout.session", "id": "cs_1", "customer": "cus_1", "customer_details": "ana"}}}')
    assert await stripe_app.post(body) == 200
    work()
    assert stripe_app.stored("evt_shape")["state"] == "unreadable"
    (told,) = stripe_app.told()
    assert told.startswith("Stripe event I could not read, recorded: checkout.session.completed (evt_shape)")


async def test_a_duplicate_delivery_is_stored_once_and_makes_one_intent(stripe_app, services, db, work) -> None:
    services.crm.upsert([ANA])
    delivered = failed()
    assert await stripe_app.post(delivered) == 200
    work()
    assert await stripe_app.post(delivered) == 200
    work()
    assert count(db, "stripe_events") == 1
    assert count(db, "intents", f"dedupe_key = 'stripe:{delivered['id']}' AND requested_by = 'stripe:webhook'") == 1
    assert count(db, "runs") == 1


async def test_a_failed_payment_tells_the_operator_and_keeps_access_until_the_last_attempt(
        stripe_app, services, db, work) -> None:
    services.crm.upsert([ANA])
    assert await stripe_app.post(failed(attempt=1)) == 200
    work()
    assert run_state(db, 1) == "succeeded"
    assert services.crm.get("cus_ana").access == "active"
    told = stripe_app.told()
    assert any(t.startswith("Payment failed: Ana Souza, $29.00 (attempt 1)") and "tries again" in t for t in told)

    assert await stripe_app.post(failed(attempt=4, final=True, created=T0 + 10)) == 200
    work()
    assert run_state(db, 2) == "succeeded"
    assert services.crm.get("cus_ana").access == "paused"
    assert any(t.startswith("Payment failed: Ana Souza, $29.00 (attempt 4)") and "last attempt" in t
               for t in stripe_app.told())
    with db.connection() as conn:
        intent = conn.execute("SELECT * FROM intents WHERE id = 2").fetchone()
    assert (intent["kind"], intent["channel"], intent["conversation"]) == ("dunning", *HOME)


async def test_a_new_subscription_is_provisioned_and_welcomed_once_approved(stripe_app, services, db, work) -> None:
    session = checkout_session(customer="cus_new", subscription="sub_new", email="bo@example.com", name="Bo Lin")
    assert await stripe_app.post(event("checkout.session.completed", session, created=T0)) == 200
    work()
    new = services.crm.get("cus_new")
    assert new is not None and (new.status, new.access, new.email) == ("active", "active", "bo@example.com")
    # The welcome email is to a customer: policy asks first.
    assert run_state(db, 1) == "awaiting_approval"
    stripe_app.ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert count(db, "connector_actions", "connector = 'email' AND state = 'done'") == 1

    # Stripe also sends the subscription's first invoice: the sign-up was fulfilled already.
    first = invoice(customer="cus_new", subscription="sub_new", paid=True, billing_reason="subscription_create")
    assert await stripe_app.post(event("invoice.paid", first, created=T0 + 1)) == 200
    work()
    assert count(db, "intents") == 1
    assert count(db, "stripe_events", "outcome = 'already_fulfilled'") == 1


async def test_a_cancelled_subscription_makes_the_contact_lapsed_and_tells_the_operator(
        stripe_app, services, db, work) -> None:
    services.crm.upsert([ANA])
    gone = event("customer.subscription.deleted", subscription(customer="cus_ana", id="sub_ana"), created=T0)
    assert await stripe_app.post(gone) == 200
    work()
    assert services.crm.get("cus_ana").status == "lapsed"
    assert any(t.startswith("Ana Souza's subscription was cancelled: marked lapsed") for t in stripe_app.told())


async def test_an_event_older_than_one_applied_is_recorded_reported_and_changes_nothing(
        stripe_app, services, db, work) -> None:
    services.crm.upsert([ANA])
    gone = event("customer.subscription.deleted", subscription(customer="cus_ana", id="sub_ana"), created=T0 + 100)
    assert await stripe_app.post(gone) == 200
    work()
    late = failed(attempt=4, final=True, created=T0)
    assert await stripe_app.post(late) == 200
    work()
    assert stripe_app.stored(late["id"])["outcome"] == "out_of_order"
    assert count(db, "intents") == 1
    ana = services.crm.get("cus_ana")
    assert (ana.status, ana.access) == ("lapsed", "active")
    assert any(t.startswith(f"Stripe event out of order, recorded and not applied: invoice.payment_failed "
                            f"({late['id']})") for t in stripe_app.told())


async def test_an_event_for_an_unknown_customer_is_recorded_and_reported(stripe_app, db, work) -> None:
    stranger = failed(customer="cus_nobody", email="nobody@example.com")
    assert await stripe_app.post(stranger) == 200
    work()
    assert stripe_app.stored(stranger["id"])["outcome"] == "unknown_customer"
    assert count(db, "intents") == 0
    told = stripe_app.told()
    assert len(told) == 1 and "cus_nobody <nobody@example.com>" in told[0]


async def test_an_event_of_another_type_is_recorded_and_reported(stripe_app, db, work) -> None:
    other = event("customer.updated", {"id": "cus_ana", "object": "customer"}, created=T0)
    assert await stripe_app.post(other) == 200
    work()
    assert stripe_app.stored(other["id"])["outcome"] == "not_handled"
    assert stripe_app.told() == [f"Stripe event recorded: customer.updated ({other['id']}); I have no rule for it, "
                                 f"nothing was done.\n"]


async def test_a_store_that_fails_answers_5xx_so_stripe_sends_it_again(stripe_app, services, db, work) -> None:
    services.crm.upsert([ANA])
    delivered = failed()
    with db.connection() as conn:
        conn.execute("ALTER TABLE stripe_events RENAME TO stripe_events_away")
    try:
        assert await stripe_app.post(delivered) == 503
    finally:
        with db.connection() as conn:
            conn.execute("ALTER TABLE stripe_events_away RENAME TO stripe_events")
    assert count(db, "stripe_events") == 0
    assert await stripe_app.post(delivered) == 200
    work()
    assert count(db, "intents") == 1


async def test_the_endpoint_is_not_served_without_a_secret(services, settings) -> None:
    bare = settings.model_copy(update={"stripe_webhook_secret": None})
    async with TestClient(TestServer(build_web_app(operations(services), bare, deliver=False))) as http:
        body, headers = signed(failed(), SECRET)
        assert (await http.post("/stripe/webhook", data=body, headers=headers)).status == 404
