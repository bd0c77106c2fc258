"""`contacts.sync_stripe` against the Stripe stand-in: customers paged into contacts linked by Stripe id,
resumable after an interruption, and the link used by charges and by webhook events."""
from datetime import UTC, datetime

import pytest

from connectors import (
    Charge,
    CircuitBreaker,
    ConnectorUnavailable,
    RetryPolicy,
    StripePayments,
    UnknownRecord,
    stripe_client,
)
from orchestrator import contacts
from orchestrator.inbound.stripe_intake import find_contact
from orchestrator.inbound.stripe_rules import Facts
from tests.standins.stripe_api import API_KEY, StripeStandIn

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PEOPLE = [("cus_ana", "ana@example.com", "Ana Souza"), ("cus_ben", "ben@example.com", "Ben Ito"),
          ("cus_cleo", "cleo@example.com", "Cleo Park"), ("cus_dev", "dev@example.com", "Dev Rao"),
          ("cus_eli", "eli@example.com", "Eli Moss")]


@pytest.fixture
def on_stripe(services, stripe_api: StripeStandIn):
    """The services with payments on the stand-in; no retries here, so a scripted 500 interrupts the sync."""
    services.clock = lambda: NOW
    services.payments = StripePayments(services.stores.pool, stripe_client(API_KEY, api_base=stripe_api.url),
                                       retry=RetryPolicy(attempts=1, base_seconds=0.01, retry_declines=False),
                                       breaker=CircuitBreaker("stripe", threshold=50), sleep=lambda _s: None)
    for cid, email, name in PEOPLE:
        stripe_api.add_customer(cid, email=email, name=name)
    stripe_api.add_subscription("sub_ana", customer="cus_ana", amount_cents=2900)
    stripe_api.add_subscription("sub_ben", customer="cus_ben", amount_cents=1200, status="past_due")
    stripe_api.add_subscription("sub_cleo", customer="cus_cleo", amount_cents=24000, status="canceled",
                                interval="year")
    return services


def linked(db) -> dict[str, tuple[str, str, str, int]]:
    with db.connection() as conn:
        rows = conn.execute("SELECT stripe_customer_id, email, status, plan, monthly_cents FROM crm_contacts"
                            ).fetchall()
    return {r["stripe_customer_id"]: (r["email"], r["status"], r["plan"], r["monthly_cents"]) for r in rows}


def sync(services, heard: list | None = None) -> contacts.SyncSummary:
    return contacts.sync_stripe(services, actor="console:operator", page_size=2,
                                progress=heard.append if heard is not None else None)


def test_a_sync_over_several_pages_makes_contacts_linked_to_their_stripe_ids(on_stripe, stripe_api, db):
    heard: list = []
    summary = sync(on_stripe, heard)
    assert (summary.counts.pages, summary.counts.inserted, summary.counts.updated) == (3, 5, 0)
    assert [c.pages for c in heard] == [1, 2, 3]
    assert [call.params.get("starting_after") for call in stripe_api.calls_to("customers.list")] == [
        None, "cus_dev", "cus_ben"]
    assert linked(db) == {
        "cus_ana": ("ana@example.com", "active", "monthly", 2900),
        "cus_ben": ("ben@example.com", "active", "monthly", 1200),  # past due is still a paying customer
        "cus_cleo": ("cleo@example.com", "lapsed", "annual", 2000),
        "cus_dev": ("dev@example.com", "lapsed", "", 0),  # no subscription at all
        "cus_eli": ("eli@example.com", "lapsed", "", 0),
    }
    with db.connection() as conn:
        [event] = conn.execute("SELECT payload FROM audit_events WHERE kind = 'contacts.synced'").fetchall()
        assert conn.execute("SELECT count(*) AS n FROM contact_syncs").fetchone()["n"] == 0
    assert (event["payload"]["inserted"], event["payload"]["resumed_after"]) == (5, None)


def test_a_second_sync_changes_nothing(on_stripe, db):
    sync(on_stripe)
    again = sync(on_stripe).counts
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)


def test_a_contact_imported_before_is_linked_by_email_not_duplicated(on_stripe, db):
    with db.connection() as conn:
        conn.execute("INSERT INTO crm_contacts (id, email, name, plan, status, monthly_cents) "
                     "VALUES ('c-77', 'ANA@example.com', 'Ana', 'monthly', 'lead', 0)")
    counts = sync(on_stripe).counts
    assert (counts.inserted, counts.updated) == (4, 1)
    assert on_stripe.crm.get("c-77").stripe_customer_id == "cus_ana"


def test_an_interrupted_sync_goes_on_after_its_last_finished_page_without_duplicates(on_stripe, stripe_api, db):
    stripe_api.fail_next("customers.list", after=1)
    with pytest.raises(ConnectorUnavailable):
        sync(on_stripe)
    assert len(linked(db)) == 2
    summary = sync(on_stripe)
    assert summary.resumed_after == "cus_dev"
    # The sync's counts are those of both runs: five new contacts, once each.
    assert (summary.counts.pages, summary.counts.inserted, summary.counts.unchanged) == (3, 5, 0)
    assert [call.params.get("starting_after") for call in stripe_api.calls_to("customers.list")] == [
        None, "cus_dev", "cus_dev", "cus_ben"]
    assert len(linked(db)) == 5


def test_after_a_sync_a_charge_for_a_contact_goes_to_its_stripe_customer(on_stripe, stripe_api, db):
    sync(on_stripe)
    ana = on_stripe.crm.by_email("ana@example.com")
    assert ana.id.startswith("c-")
    receipt = on_stripe.payments.execute(action=Charge(customer=ana.id, amount_cents=2030), key="run:1:renew:ana")
    assert receipt.customer == ana.id
    assert [pi["amount"] for pi in stripe_api.succeeded_charges("cus_ana")] == [2030]
    assert [c.key for c in on_stripe.payments.refundable(ana.id)] == [receipt.reference]


def test_a_charge_for_a_contact_not_linked_to_stripe_is_an_unknown_record(on_stripe, stripe_api, db):
    with db.connection() as conn:
        conn.execute("INSERT INTO crm_contacts (id, email, name, plan, status, monthly_cents) "
                     "VALUES ('c-9', 'zoe@example.com', 'Zoe', 'monthly', 'lapsed', 900)")
    with pytest.raises(UnknownRecord, match="opsos contacts sync stripe"):
        on_stripe.payments.execute(action=Charge(customer="c-9", amount_cents=900), key="run:2:renew:zoe")
    assert stripe_api.calls_to("payment_intents.create") == []


def test_a_webhook_event_finds_the_contact_by_its_stripe_id(on_stripe, db):
    sync(on_stripe)
    found = find_contact(on_stripe, Facts(object_key="sub_ana", customer="cus_ana", email="other@example.com"))
    assert found is not None and found.email == "ana@example.com"


def test_a_sync_on_the_sandbox_says_there_is_no_stripe_to_sync_from(services):
    with pytest.raises(contacts.NotOnStripe):
        contacts.sync_stripe(services, actor="console:operator")
