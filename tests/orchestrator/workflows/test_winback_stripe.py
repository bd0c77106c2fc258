"""The win-back campaign on the operator's Stripe account (the stand-in, through the `stripe` library): contacts
synced from Stripe, the campaign approved, its emails sent, and the renewals charged at Stripe on each customer's
saved card under opsos's Idempotency-Key, declines retried then paused, a worker's death mid-charge charged once."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors import CircuitBreaker, RetryPolicy, StripePayments, stripe_client
from orchestrator import Decision, RunState, contacts, engine
from orchestrator.jobs import recover_runs
from orchestrator.services import action_registry
from tests.orchestrator.helpers import OPERATOR, run_state, to_approval
from tests.standins.stripe_api import API_KEY, StripeStandIn

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Crash(BaseException):
    """Stands for the worker dying: not an Exception, so nothing in the engine catches it."""


@pytest.fixture
def on_stripe(services, stripe_api: StripeStandIn):
    """Payments on the stand-in, and its customers synced into contacts: Ana and Ben lapsed (their subscriptions
    cancelled), Cleo paying, Dev a customer who never subscribed (lapsed with nothing to renew)."""
    services.clock = lambda: NOW
    services.payments = StripePayments(services.stores.pool, stripe_client(API_KEY, api_base=stripe_api.url),
                                       claims=services.payments.claims,
                                       retry=RetryPolicy(attempts=2, base_seconds=0.01, retry_declines=False),
                                       breaker=CircuitBreaker("stripe", threshold=50), sleep=lambda _s: None)
    services.connectors = action_registry(email=services.email, payments=services.payments, crm=services.crm,
                                          books=services.books)
    for cid, email, name in (("cus_ana", "ana@example.com", "Ana Souza"), ("cus_ben", "ben@example.com", "Ben Ito"),
                             ("cus_cleo", "cleo@example.com", "Cleo Park"), ("cus_dev", "dev@example.com", "Dev Rao")):
        stripe_api.add_customer(cid, email=email, name=name)
    stripe_api.add_subscription("sub_ana", customer="cus_ana", amount_cents=1200, status="canceled")
    stripe_api.add_subscription("sub_ben", customer="cus_ben", amount_cents=2000, status="canceled")
    stripe_api.add_subscription("sub_cleo", customer="cus_cleo", amount_cents=2900)
    contacts.sync_stripe(services, actor="console:operator")
    return services


def charged(stripe_api: StripeStandIn) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for intent in stripe_api.succeeded_charges():
        found.setdefault(intent["customer"], []).append(intent["amount"])
    return found


def test_a_campaign_on_synced_contacts_charges_each_lapsed_customer_once_at_stripe(on_stripe, stripe_api, db, work):
    """Proves the whole campaign runs on Stripe: the renewals are PaymentIntents on each customer's saved card,
    keyed by opsos's own key; Cleo (paying) and Dev (nothing to renew) are neither emailed nor charged. Before,
    Dev's $0 renewal failed the charge step's validation and with it the campaign."""
    ops, approval = to_approval(on_stripe, work)
    ops.decide(OPERATOR, approval, Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert charged(stripe_api) == {"cus_ana": [840], "cus_ben": [1400]}
    creates = stripe_api.calls_to("payment_intents.create")
    assert {c.params["payment_method"] for c in creates} == {"pm_cus_ana", "pm_cus_ben"}
    ana = on_stripe.crm.by_email("ana@example.com")
    assert {c.headers["idempotency-key"] for c in creates} == {
        f"run:1:collect_renewals:{ana.id}", f"run:1:collect_renewals:{on_stripe.crm.by_email('ben@example.com').id}"}
    sent = sorted(p.read_text() for p in on_stripe.settings.outbox_email_dir.glob("*.eml"))
    assert len(sent) == 2 and not any("dev@example.com" in s or "cleo@example.com" in s for s in sent)


def test_a_card_declined_at_stripe_is_retried_then_its_access_paused(on_stripe, stripe_api, db, work):
    """Ben's card is declined on every try of the retry policy: he is not charged, the operator is told, and the
    compensating pause ends his grace period; Ana's renewal goes through."""
    stripe_api.decline_next("cus_ben", times=on_stripe.payment_retry.attempts)
    ops, approval = to_approval(on_stripe, work)
    ops.decide(OPERATOR, approval, Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert charged(stripe_api) == {"cus_ana": [840]}
    ben = [c for c in stripe_api.calls_to("payment_intents.create") if c.params["customer"] == "cus_ben"]
    # Each try after a decline walks the key's earlier forms (Stripe replays their declines) to a fresh one.
    assert len({c.headers["idempotency-key"] for c in ben}) == on_stripe.payment_retry.attempts
    assert on_stripe.crm.by_email("ben@example.com").access == "paused"
    assert on_stripe.crm.by_email("ana@example.com").access == "active"


def test_a_worker_killed_after_stripe_charged_is_rerun_and_charges_once(on_stripe, stripe_api, db, work, monkeypatch):
    """Stripe took the first renewal, then the worker died before opsos recorded it: the re-run sends the same
    Idempotency-Key, Stripe replays the first answer, and the stand-in's records hold one charge."""
    ops, approval = to_approval(on_stripe, work)
    ops.decide(OPERATOR, approval, Decision.APPROVED)
    intents = on_stripe.payments.client.v1.payment_intents
    create = intents.create

    def charge_then_die(*args, **kwargs):
        create(*args, **kwargs)
        monkeypatch.setattr(intents, "create", create)
        raise Crash

    monkeypatch.setattr(intents, "create", charge_then_die)
    on_stripe.stores.redis.flushdb()  # advanced by hand: the queued job stands for the one the dead worker took
    with pytest.raises(Crash):
        engine.advance(on_stripe, 1)
    assert len(stripe_api.succeeded_charges()) == 1
    # The dead worker's claim on Ana's key runs out (as `action_claim_seconds` after its start would).
    with db.connection() as conn:
        conn.execute("UPDATE connector_actions SET claimed_until = clock_timestamp() WHERE state = 'pending'")
    assert recover_runs(on_stripe) == [1]
    assert engine.advance(on_stripe, 1) is RunState.SUCCEEDED
    assert charged(stripe_api) == {"cus_ana": [840], "cus_ben": [1400]}
    creates = stripe_api.calls_to("payment_intents.create")
    died_on = creates[0].headers["idempotency-key"]
    # The re-run asked again under the same key, and was answered with the first charge.
    assert [c.headers["idempotency-key"] for c in creates].count(died_on) == 2
