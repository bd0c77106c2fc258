"""The Stripe payments connector, through Stripe's own library, against the local Stripe stand-in."""
from __future__ import annotations

import pytest

from connectors import (
    ActionDeclined,
    ActionInProgress,
    ActionRejected,
    CancelSubscription,
    Charge,
    CircuitBreaker,
    CircuitOpen,
    ConnectorUnavailable,
    CredentialsRejected,
    PauseCollection,
    Refund,
    RetryPolicy,
    StripePayments,
    UnknownRecord,
    stripe_client,
)
from connectors.stripe import stripe_key
from tests.concurrency import at_once
from tests.standins.stripe_api import API_KEY, StripeStandIn, decode_form

KEY = "run:7:collect_renewals:cus_ana"


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def payments(db, stripe_api: StripeStandIn, waits: list[float]) -> StripePayments:
    stripe_api.add_customer("cus_ana", email="ana@example.com", name="Ana Souza")
    return StripePayments(db, stripe_client(API_KEY, api_base=stripe_api.url),
                          retry=RetryPolicy(attempts=3, base_seconds=0.5, retry_declines=False),
                          breaker=CircuitBreaker("stripe", threshold=50), sleep=waits.append)


def forget(db, key: str) -> None:
    with db.connection() as conn:
        conn.execute("DELETE FROM connector_actions WHERE key = %s", (key,))


def test_a_charge_rerun_after_opsos_lost_its_record_charges_once(db, payments, stripe_api):
    """Stripe's Idempotency-Key, not opsos's own record, is what stops the second charge."""
    first = payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    forget(db, KEY)
    again = payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    assert not first.duplicate and again.duplicate and again.reference == first.reference
    assert [pi["amount"] for pi in stripe_api.succeeded_charges("cus_ana")] == [840]
    sent = stripe_api.calls_to("payment_intents.create")
    assert [call.headers["idempotency-key"] for call in sent] == [KEY, KEY]
    assert sent[0].params["off_session"] == "true" and sent[0].params["payment_method"] == "pm_cus_ana"


def test_a_repeat_with_the_record_kept_does_not_call_stripe(payments, stripe_api):
    payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    assert payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY).duplicate
    assert len(stripe_api.calls_to("payment_intents.create")) == 1


def test_a_decline_is_action_declined_with_stripes_decline_code(payments, stripe_api):
    stripe_api.decline_next("cus_ana", decline_code="insufficient_funds")
    with pytest.raises(ActionDeclined) as declined:
        payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    assert declined.value.reason == "insufficient_funds"
    assert "Your card has insufficient funds." in str(declined.value)
    assert stripe_api.succeeded_charges() == []


def test_a_retry_after_declines_charges_once_even_when_opsos_lost_its_record(db, payments, stripe_api):
    """Stripe replays a stored decline under its key; the retry moves to the key's next form, and a re-run that
    lost opsos's record walks past the replayed declines to the charge, without charging again."""
    stripe_api.decline_next("cus_ana", times=2)
    for _ in range(2):
        with pytest.raises(ActionDeclined):
            payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    charged = payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    forget(db, KEY)
    rerun = payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    assert not charged.duplicate and rerun.duplicate and rerun.reference == charged.reference
    assert len(stripe_api.succeeded_charges("cus_ana")) == 1
    keys = {call.headers["idempotency-key"] for call in stripe_api.calls_to("payment_intents.create")}
    assert keys == {stripe_key(KEY, attempt=n) for n in range(3)}


def test_rate_limits_are_retried_with_backoff_and_charge_once(payments, stripe_api, waits):
    stripe_api.fail_next("payment_intents.create", 2, kind="ratelimited")
    receipt = payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    assert not receipt.duplicate and len(stripe_api.succeeded_charges()) == 1
    assert waits == [0.5, 1.0]


def test_server_errors_past_the_retries_are_unavailable_and_free_the_key(payments, stripe_api):
    stripe_api.fail_next("payment_intents.create", 3)
    with pytest.raises(ConnectorUnavailable):
        payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    assert stripe_api.succeeded_charges() == []
    # The claim was given back: the next attempt charges at once, under the same Idempotency-Key.
    assert not payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY).duplicate
    assert len(stripe_api.succeeded_charges()) == 1


def test_a_stripe_that_keeps_failing_opens_the_circuit(db, stripe_api):
    stripe_api.add_customer("cus_ana", email="ana@example.com", name="Ana Souza")
    payments = StripePayments(db, stripe_client(API_KEY, api_base=stripe_api.url),
                              retry=RetryPolicy(attempts=1, retry_declines=False),
                              breaker=CircuitBreaker("stripe", threshold=2, reset_after=60), sleep=lambda _s: None)
    stripe_api.fail_next("customers.retrieve", 2)
    for _ in range(2):
        with pytest.raises(ConnectorUnavailable):
            payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    calls = len(stripe_api.calls)
    with pytest.raises(CircuitOpen):
        payments.execute(action=Charge(customer="cus_ana", amount_cents=840), key=KEY)
    assert len(stripe_api.calls) == calls


def test_an_invalid_request_fails_with_stripes_own_words(payments, stripe_api):
    with pytest.raises(ActionRejected) as refused:
        payments.execute(action=Charge(customer="cus_ana", amount_cents=10), key=KEY)
    assert refused.value.code == "amount_too_small"
    assert str(refused.value) == "Stripe refused the charge to cus_ana: Amount must be at least $0.50 usd"


def test_a_charge_to_a_customer_stripe_does_not_have_is_an_unknown_record(payments):
    with pytest.raises(UnknownRecord) as unknown:
        payments.execute(action=Charge(customer="cus_nobody", amount_cents=840), key=KEY)
    assert unknown.value.record == "cus_nobody"


def test_a_customer_without_a_saved_card_is_declined(payments, stripe_api):
    stripe_api.add_customer("cus_ben", email="ben@example.com", name="Ben", card=False)
    with pytest.raises(ActionDeclined) as declined:
        payments.execute(action=Charge(customer="cus_ben", amount_cents=840), key="k-ben")
    assert declined.value.reason == "no_payment_method"
    assert stripe_api.calls_to("payment_intents.create") == []


def test_partial_then_full_refund_and_the_compensation_refunds_the_rest_once(payments, stripe_api):
    payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key=KEY)
    part = payments.execute(action=Refund(charge_key=KEY, amount_cents=500, reason="late"), key="refund-1")
    assert (part.amount_cents, part.customer, part.duplicate) == (500, "cus_ana", False)
    assert [c.amount_cents for c in payments.refundable("cus_ana")] == [700]
    assert payments.compensate(key=KEY) == "refunded 7.00 USD"
    assert payments.compensate(key=KEY) == "already refunded"
    assert payments.refundable("cus_ana") == []
    again = payments.execute(action=Refund(charge_key=KEY), key="refund-2")
    assert again.duplicate
    assert [r["amount"] for r in stripe_api.refunds.values()] == [500, 700]
    assert payments.compensate(key="refund-1") == "a refund cannot be taken back"


def test_a_full_refund_by_stripe_id_is_made_once_per_key(db, payments, stripe_api):
    receipt = payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key=KEY)
    (refundable,) = payments.refundable("cus_ana")
    assert refundable.key == receipt.reference
    first = payments.execute(action=Refund(charge_key=refundable.key), key="refund-1")
    forget(db, "refund-1")
    second = payments.execute(action=Refund(charge_key=refundable.key), key="refund-1")
    assert first.amount_cents == 1200 and second.duplicate
    assert len(stripe_api.refunds) == 1


def test_a_refund_of_a_charge_opsos_never_made_is_refused(payments):
    with pytest.raises(UnknownRecord):
        payments.execute(action=Refund(charge_key="never-charged"), key="refund-1")


def test_pausing_collection_is_undone_by_resuming_it_once(payments, stripe_api):
    stripe_api.add_subscription("sub_ana", customer="cus_ana", amount_cents=1200)
    paused = payments.execute(action=PauseCollection(subscription="sub_ana"), key="pause-1")
    assert paused.collection_paused and stripe_api.subscriptions["sub_ana"]["pause_collection"] == {
        "behavior": "void", "resumes_at": None}
    assert payments.compensate(key="pause-1") == "resumed collection of sub_ana"
    assert stripe_api.subscriptions["sub_ana"]["pause_collection"] is None
    assert payments.compensate(key="pause-1") == "already resumed"
    resumes = stripe_api.calls_to("subscriptions.update")[1:]
    assert [call.params for call in resumes] == [{"pause_collection": ""}]
    assert resumes[0].headers["idempotency-key"] == stripe_key("pause-1", purpose="undo")


def test_a_cancelled_subscription_stays_cancelled(payments, stripe_api):
    stripe_api.add_subscription("sub_ana", customer="cus_ana", amount_cents=1200)
    cancelled = payments.execute(action=CancelSubscription(subscription="sub_ana"), key="cancel-1")
    assert cancelled.status == "canceled"
    assert payments.execute(action=CancelSubscription(subscription="sub_ana"), key="cancel-1").duplicate
    assert payments.compensate(key="cancel-1") == "a cancelled subscription cannot be taken back"
    assert len(stripe_api.calls_to("subscriptions.cancel")) == 1


def test_reads_page_through_customers_and_find_failed_invoices(payments, stripe_api):
    for n in range(3):
        stripe_api.add_customer(f"cus_{n}", email=f"c{n}@example.com", name=f"Customer {n}")
    stripe_api.add_subscription("sub_ana", customer="cus_ana", amount_cents=1200)
    stripe_api.add_invoice("in_new", customer="cus_ana", subscription="sub_ana", amount_cents=1200)
    stripe_api.add_invoice("in_failed", customer="cus_ana", subscription="sub_ana", amount_cents=1200,
                           attempt_count=2)
    first = payments.customers(limit=2)
    rest = payments.customers(after=first.after, limit=2)
    assert first.has_more and not rest.has_more
    assert [c.id for c in first.items + rest.items] == ["cus_2", "cus_1", "cus_0", "cus_ana"]
    (subscription,) = payments.subscriptions(customer="cus_ana").items
    assert (subscription.amount_cents, subscription.interval, subscription.status) == (1200, "month", "active")
    assert [i.id for i in payments.invoices().items] == ["in_failed", "in_new"]
    assert [(i.id, i.subscription) for i in payments.failed_invoices()] == [("in_failed", "sub_ana")]


def test_a_wrong_key_is_refused_in_a_sentence(db, stripe_api):
    payments = StripePayments(db, stripe_client("sk_test_wrong", api_base=stripe_api.url))
    with pytest.raises(CredentialsRejected) as refused:
        payments.check()
    assert "OPSOS_STRIPE_API_KEY" in str(refused.value) and "Invalid API Key provided" in str(refused.value)


@pytest.mark.parametrize(("pairs", "decoded"), [
    ([("amount", "840")], {"amount": "840"}),
    ([("metadata[opsos_key]", "k"), ("metadata[reason]", "")], {"metadata": {"opsos_key": "k", "reason": ""}}),
    ([("expand[0]", "data.latest_charge")], {"expand": ["data.latest_charge"]}),
    ([("pause_collection[behavior]", "void")], {"pause_collection": {"behavior": "void"}}),
    ([("pause_collection", "")], {"pause_collection": ""}),
])
def test_the_stand_in_reads_stripes_nested_form_encoding(pairs, decoded):
    assert decode_form(pairs) == decoded


@pytest.mark.parametrize(("key", "purpose", "attempt", "sent"), [
    ("run:1:collect:c-1", "do", 0, "run:1:collect:c-1"),
    ("x" * 256, "do", 0, None),
    ("run:1:collect:c-1", "do", 1, None),
    ("run:1:collect:c-1", "undo", 0, None),
])
def test_the_idempotency_key_is_the_opsos_key_when_it_fits(key, purpose, attempt, sent):
    made = stripe_key(key, purpose=purpose, attempt=attempt)
    assert made == sent if sent is not None else (made.startswith("opsos/") and len(made) <= 255)


def test_two_compensations_at_once_send_stripe_one_refund(payments, stripe_api):
    """The undoing is claimed across the refund call: a second compensator meanwhile is told it is in progress
    (or, once the first finished, already refunded) and sends Stripe nothing."""
    payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key=KEY)
    stripe_api.slow_next("refunds.create", seconds=1.0)
    said = at_once([lambda: payments.compensate(key=KEY) for _ in range(2)], expect=(ActionInProgress,))
    assert "refunded 12.00 USD" in said
    (other,) = [s for s in said if s != "refunded 12.00 USD"]
    assert isinstance(other, ActionInProgress) or other == "already refunded"
    assert len(stripe_api.calls_to("refunds.create")) == 1 and len(stripe_api.refunds) == 1
    assert payments.compensate(key=KEY) == "already refunded"


def die_before_finish(db, key: str) -> None:
    """As a worker killed after Stripe answered and before it recorded the answer: the claim pending, run out."""
    with db.connection() as conn:
        conn.execute("UPDATE connector_actions SET state = 'pending', result = NULL, owner = 'dead-worker',"
                     " claimed_until = clock_timestamp() - interval '1 second' WHERE key = %s", (key,))


def test_a_charge_whose_answer_was_never_recorded_is_found_in_stripe_and_refunded_once(db, payments, stripe_api):
    """Compensation looks the charge up by the opsos key in its metadata instead of saying "not known yet"."""
    receipt = payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key=KEY)
    die_before_finish(db, KEY)
    assert payments.compensate(key=KEY) == "refunded 12.00 USD"
    assert payments.compensate(key=KEY) == "already refunded"
    assert [r["payment_intent"] for r in stripe_api.refunds.values()] == [receipt.reference]
    with db.connection() as conn:
        row = conn.execute("SELECT state, result FROM connector_actions WHERE key = %s", (KEY,)).fetchone()
    assert row["state"] == "compensated" and row["result"]["reference"] == receipt.reference


def test_a_charge_whose_worker_died_before_stripe_charged_compensates_to_nothing_charged(db, payments, stripe_api):
    """Declined tries carry the key too; only a PaymentIntent that took money is refunded."""
    stripe_api.decline_next("cus_ana")
    with pytest.raises(ActionDeclined):
        payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key=KEY)
    die_before_finish(db, KEY)
    assert payments.compensate(key=KEY) == "nothing was charged"
    assert payments.compensate(key=KEY) == "nothing was charged"
    assert stripe_api.calls_to("refunds.create") == []


def test_an_attempt_answering_after_its_charge_was_undone_as_nothing_charged_records_nothing(db, payments,
                                                                                             stripe_api):
    """Review finding: the attempt whose claim ran out was not dead, only slow; its late answer must not record a
    charge the undoing did not see. The undoing took the key over, so the late finish is refused."""
    from connectors import ClaimTakenOver, fenced

    class Late:
        owner = "dead-worker"

        def check(self) -> None:
            return None

    stripe_api.decline_next("cus_ana")
    with pytest.raises(ActionDeclined):
        payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key=KEY)
    die_before_finish(db, KEY)
    assert payments.compensate(key=KEY) == "nothing was charged"
    with fenced(Late()), db.connection() as conn, pytest.raises(ClaimTakenOver):
        payments.claims.finish(conn, key=KEY, result={"reference": "pi_late"})


def test_a_charge_claim_still_held_by_a_live_worker_is_not_compensated_under_it(db, payments, stripe_api):
    payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key=KEY)
    with db.connection() as conn:
        conn.execute("UPDATE connector_actions SET state = 'pending', result = NULL, owner = 'live-worker',"
                     " claimed_until = clock_timestamp() + interval '5 minutes' WHERE key = %s", (KEY,))
    with pytest.raises(ActionInProgress) as busy:
        payments.compensate(key=KEY)
    assert busy.value.retry_after > 0 and stripe_api.calls_to("refunds.create") == []


def test_the_payments_of_a_period_are_its_succeeded_charges_and_its_refunds_signed(payments, stripe_api):
    """Proves the books' read: January's two charges at their gross amount and the partial refund as money out
    (its customer read from its charge), oldest first by Stripe id; a decline and February's charge are not in it."""
    from datetime import UTC, datetime

    stripe_api.add_customer("cus_ben", email="ben@example.com", name="Ben Ito")
    first = payments.execute(action=Charge(customer="cus_ana", amount_cents=1200, description="renewal"), key="a")
    payments.execute(action=Charge(customer="cus_ben", amount_cents=2900), key="b")
    stripe_api.decline_next("cus_ben")
    with pytest.raises(ActionDeclined):
        payments.execute(action=Charge(customer="cus_ben", amount_cents=2900), key="c")
    payments.execute(action=Refund(charge_key="a", amount_cents=500), key="r")
    stripe_api.advance(40 * 86400)
    payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key="d")
    lines = payments.payments_between(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    charge_a = stripe_api.payment_intents[first.reference]["latest_charge"]
    assert [(line.customer, line.amount_cents, line.description) for line in lines] == [
        ("cus_ana", 1200, "charge: renewal"), ("cus_ben", 2900, "charge"), ("cus_ana", -500, f"refund of {charge_a}")]
    assert lines[0].id == charge_a and lines[2].id.startswith("re_")
    listed = stripe_api.calls_to("charges.list")[0].params
    assert listed["created"] == {"gte": "1767225600", "lt": "1769904000"}
