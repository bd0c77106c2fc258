"""The sandbox payments connector: one success per key even under concurrency, declines on demand, refunds once."""
import pytest

from connectors import ActionDeclined, Charge, ConnectorError, Refund, SandboxPayments, UnknownRecord
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


def test_refund_twice_with_one_key_refunds_once(db):
    payments = SandboxPayments(db)
    payments.execute(action=Charge(customer="c-6", amount_cents=1200), key="sub:c-6:1")
    first = payments.execute(action=Refund(charge_key="sub:c-6:1"), key="run:1:execute:0:refund:c-6")
    second = payments.execute(action=Refund(charge_key="sub:c-6:1"), key="run:1:execute:0:refund:c-6")
    assert not first.duplicate and second.duplicate and second.amount_cents == 1200
    assert [e["kind"] for e in payments.ledger("c-6")] == ["charge", "refund"]


def test_a_charge_is_refunded_once_whichever_key_asks(db):
    payments = SandboxPayments(db)
    payments.execute(action=Charge(customer="c-7", amount_cents=500), key="sub:c-7:1")
    assert payments.compensate(key="sub:c-7:1") == "refunded 5.00 USD"
    again = payments.execute(action=Refund(charge_key="sub:c-7:1"), key="run:2:execute:0:refund:c-7")
    assert again.duplicate
    assert [e["kind"] for e in payments.ledger("c-7")] == ["charge", "refund"]
    assert payments.compensate(key="run:2:execute:0:refund:c-7") == "a refund cannot be taken back"


def test_refund_of_an_unknown_charge_is_refused(db):
    payments = SandboxPayments(db)
    with pytest.raises(UnknownRecord) as refused:
        payments.execute(action=Refund(charge_key="never-charged"), key="k")
    assert isinstance(refused.value, ConnectorError) and refused.value.record == "never-charged"
    assert payments.ledger() == []
