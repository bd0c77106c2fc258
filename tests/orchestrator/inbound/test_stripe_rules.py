"""The rules that turn a Stripe event into an intent, table-driven on the pure functions `read` and `decide`."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors import Contact
from orchestrator.inbound.stripe_rules import Outcome, StripeEvent, decide, read
from tests.standins.stripe_signing import checkout_session, event, invoice, subscription

T0 = 1_760_000_000
ANA = Contact(id="cus_ana", email="ana@example.com", name="Ana Souza", plan="monthly", status="active",
              monthly_cents=2900)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def failed(*, final: bool, attempt: int = 1) -> dict:
    return invoice(customer="cus_ana", subscription="sub_ana", attempt=attempt,
                   next_attempt=None if final else T0 + 86400)


CASES = [
    # (what, type, object, contact, newest applied, fulfilled) -> outcome, workflow, applies
    ("a failed payment with retries left", "invoice.payment_failed", failed(final=False), ANA, None, False,
     Outcome.DUNNING, "dunning", True),
    ("a failed payment after the last attempt", "invoice.payment_failed", failed(final=True, attempt=4), ANA, None,
     False, Outcome.DUNNING, "dunning", True),
    ("a failed payment of a customer nobody knows", "invoice.payment_failed", failed(final=True), None, None, False,
     Outcome.UNKNOWN_CUSTOMER, None, False),
    ("a failed payment older than an event applied", "invoice.payment_failed", failed(final=True), ANA, T0 + 5,
     False, Outcome.OUT_OF_ORDER, None, False),
    ("a failed payment as old as the event applied", "invoice.payment_failed", failed(final=True), ANA, T0, False,
     Outcome.DUNNING, "dunning", True),
    ("a checkout for a new subscriber", "checkout.session.completed",
     checkout_session(customer="cus_bo", subscription="sub_bo", email="bo@example.com", name="Bo Lin"), None, None,
     False, Outcome.FULFILMENT, "fulfilment", True),
    ("a one-off checkout, no subscription", "checkout.session.completed",
     checkout_session(customer="cus_bo", subscription="", email="bo@example.com", name="Bo", mode="payment"), None,
     None, False, Outcome.NOT_HANDLED, None, False),
    ("the first invoice of a sign-up already fulfilled", "invoice.paid",
     invoice(customer="cus_bo", subscription="sub_bo", paid=True, billing_reason="subscription_create"), None, T0,
     True, Outcome.ALREADY_FULFILLED, None, False),
    ("the first invoice, before any checkout", "invoice.paid",
     invoice(customer="cus_bo", subscription="sub_bo", paid=True, billing_reason="subscription_create",
             email="bo@example.com", name="Bo Lin"), None, None, False, Outcome.FULFILMENT, "fulfilment", True),
    ("a new subscription with no address to welcome", "checkout.session.completed",
     {**checkout_session(customer="cus_bo", subscription="sub_bo", email="", name="Bo"), "customer_details": {}},
     None, None, False, Outcome.UNKNOWN_CUSTOMER, None, False),
    ("a renewal paid", "invoice.paid", invoice(customer="cus_ana", subscription="sub_ana", paid=True), ANA, None,
     False, Outcome.RENEWED, None, True),
    ("a cancelled subscription", "customer.subscription.deleted", subscription(customer="cus_ana", id="sub_ana"), ANA,
     None, False, Outcome.LAPSED, "subscription_lapsed", True),
    ("a type with no rule", "customer.updated", {"id": "cus_ana", "object": "customer"}, ANA, None, False,
     Outcome.NOT_HANDLED, None, False),
]


@pytest.mark.parametrize(("what", "type", "obj", "contact", "newest", "fulfilled", "outcome", "workflow", "applies"),
                         CASES, ids=[case[0] for case in CASES])
def test_each_event_gets_its_ruling(what, type, obj, contact, newest, fulfilled, outcome, workflow, applies) -> None:
    stripe_event = StripeEvent.model_validate(event(type, obj, created=T0))
    ruling = decide(stripe_event, read(stripe_event), contact=contact, fulfilled=fulfilled,
                    newest_applied=at(newest) if newest is not None else None)
    assert (ruling.outcome, ruling.workflow, ruling.applies) == (outcome, workflow, applies)


def test_the_last_attempt_is_the_one_with_no_next_attempt() -> None:
    for final, attempt in ((False, 1), (True, 4)):
        stripe_event = StripeEvent.model_validate(event("invoice.payment_failed", failed(final=final, attempt=attempt),
                                                        created=T0))
        ruling = decide(stripe_event, read(stripe_event), contact=ANA, newest_applied=None, fulfilled=False)
        assert (ruling.params["final"], ruling.params["attempt"], ruling.params["amount_cents"]) == (final, attempt,
                                                                                                     2900)


def test_an_event_is_about_its_subscription_in_old_and_new_api_versions() -> None:
    new = invoice(customer="cus_ana", subscription="sub_ana")
    old = {**{k: v for k, v in new.items() if k != "parent"}, "subscription": "sub_ana"}
    gone = subscription(customer="cus_ana", id="sub_ana")
    keys = {read(StripeEvent.model_validate(event(kind, obj, created=T0))).object_key
            for kind, obj in (("invoice.payment_failed", new), ("invoice.payment_failed", old),
                              ("customer.subscription.deleted", gone))}
    assert keys == {"sub_ana"}
    other = read(StripeEvent.model_validate(event("customer.updated", {"id": "cus_ana"}, created=T0)))
    assert other.object_key == "cus_ana"


def test_a_fulfilment_names_the_existing_contact_when_the_email_is_known() -> None:
    session = checkout_session(customer="cus_other", subscription="sub_2", email="ana@example.com", name="A. Souza")
    stripe_event = StripeEvent.model_validate(event("checkout.session.completed", session, created=T0))
    ruling = decide(stripe_event, read(stripe_event), contact=ANA, newest_applied=None, fulfilled=False)
    assert (ruling.params["contact_id"], ruling.params["name"], ruling.params["new_contact"]) == (
        "cus_ana", "Ana Souza", False)
