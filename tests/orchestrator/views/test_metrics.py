"""`/metrics`' failed payments, counted from what opsos stored: no call to Stripe at scrape time."""
from __future__ import annotations

import json

import pytest

from connectors import ActionDeclined, Charge
from orchestrator import inbound, views
from tests.orchestrator.helpers import pay_through_stripe
from tests.standins.stripe_signing import event, invoice


def failed_payments(services) -> int:
    with services.stores.pool.connection() as conn:
        return views.metrics.snapshot(conn, services.stores.redis).connector_errors.get("payments", 0)


def test_a_declined_sandbox_charge_counts_once(services):
    """The sandbox's decline is in its ledger and in the journal: counted once, from the journal."""
    services.payments.fail_next_charges("c-ana", times=1)
    with pytest.raises(ActionDeclined):
        services.payments.execute(action=Charge(customer="c-ana", amount_cents=1200), key="renewal:ana")
    services.payments.execute(action=Charge(customer="c-ana", amount_cents=1200), key="renewal:ana:2")
    assert failed_payments(services) == 1


def test_failed_payments_on_stripe_are_declines_and_failed_invoices_without_calling_stripe(services, stripe_api):
    """Proves the count on Stripe: a declined charge of opsos's and an `invoice.payment_failed` event Stripe sent
    (delivered twice, stored once) make two; the scrape itself sends Stripe nothing. Before, the count read only the
    sandbox ledger and showed 0 on Stripe."""
    pay_through_stripe(services, stripe_api)
    stripe_api.add_customer("cus_ana", email="ana@example.com", name="Ana Souza")
    stripe_api.decline_next("cus_ana")
    with pytest.raises(ActionDeclined):
        services.payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key="renewal:ana")
    failed = event("invoice.payment_failed", invoice(customer="cus_ana", subscription="sub_ana", attempt=1),
                   created=1_767_300_000)
    for _ in range(2):
        inbound.receive(services, inbound.parse(json.dumps(failed)))
    asked = len(stripe_api.calls)
    assert failed_payments(services) == 2
    assert len(stripe_api.calls) == asked
