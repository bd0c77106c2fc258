"""The sandbox payments connector: one success per key even under concurrency, declines on demand, refunds once."""
import pytest

from connectors import ActionDeclined, Charge, SandboxPayments
from tests.concurrency import at_once


def test_same_key_charges_once(db):
    payments = SandboxPayments(db)
    first = payments.execute(action=Charge(customer="c-1", amount_cents=840), key="run:1:collect:c-1")
    second = payments.execute(action=Charge(customer="c-1", amount_cents=840), key="run:1:collect:c-1")
    assert not first.duplicate and second.duplicate and first.ledger_id == second.ledger_id
    assert len(payments.ledger("c-1")) == 1


def test_concurrent_charges_with_one_key_make_one_success(db):
    payments = SandboxPayments(db)
    receipts = at_once([lambda: payments.execute(action=Charge(customer="c-2", amount_cents=100), key="k-race")] * 6)
    assert sum(not r.duplicate for r in receipts) == 1
    assert [e["status"] for e in payments.ledger("c-2")] == ["succeeded"]


def test_told_to_fail_the_sandbox_declines_then_recovers(db):
    payments = SandboxPayments(db)
    payments.fail_next_charges("c-3", reason="insufficient_funds", times=1)
    with pytest.raises(ActionDeclined) as declined:
        payments.execute(action=Charge(customer="c-3", amount_cents=500), key="k-3")
    assert declined.value.reason == "insufficient_funds"
    assert not payments.execute(action=Charge(customer="c-3", amount_cents=500), key="k-3").duplicate
    assert [e["status"] for e in payments.ledger("c-3")] == ["failed", "succeeded"]


def test_refund_compensates_a_charge_once(db):
    payments = SandboxPayments(db)
    payments.execute(action=Charge(customer="c-4", amount_cents=700), key="k-4")
    assert payments.compensate(key="k-4") == "refunded 7.00 USD"
    assert payments.compensate(key="k-4") == "already refunded"
    assert payments.compensate(key="never-charged") == "nothing was charged"


def test_charge_of_zero_is_rejected_at_the_boundary():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Charge(customer="c-5", amount_cents=0)
