"""The bookkeeping summary with payments on Stripe (the stand-in, through the `stripe` library): the month's
charges and refunds come into the books by their Stripe ids, once however often the month is summed up."""
from __future__ import annotations

from datetime import UTC, datetime

from connectors import Charge, Refund
from orchestrator import Classification, Operations
from tests.orchestrator.helpers import OPERATOR, count, pay_through_stripe, run_state

NOW = datetime(2026, 1, 20, 9, 0, tzinfo=UTC)


class Bookkeeping:
    """Stands in for the embedding router: every request is a bookkeeping summary."""

    def classify(self, text: str) -> Classification:
        return Classification(kind="bookkeeping_summary", workflow="bookkeeping_summary", confidence=1.0)


def sum_up_the_month(services, work) -> None:
    Operations(services, Bookkeeping()).submit(OPERATOR, "categorise this month's transactions")
    work()


def last_report(db) -> str:
    with db.connection() as conn:
        report = conn.execute("SELECT message FROM outbox WHERE kind = 'report' ORDER BY id DESC").fetchone()
    return "\n".join(f"{f['label']}: {f['value']}" for s in report["message"]["sections"] for f in s["facts"])


def test_a_month_on_stripe_is_in_the_books_once_after_two_runs(services, stripe_api, db, work):
    """Proves bookkeeping reads Stripe when it is connected: January's two charges and the partial refund of one
    are in the books under source `stripe` with their Stripe ids, once after two runs, and the summary's sums
    are theirs (February's charge is not in January). Before, the import read only the sandbox ledger's table."""
    services.clock = lambda: NOW
    pay_through_stripe(services, stripe_api)
    stripe_api.add_customer("cus_ana", email="ana@example.com", name="Ana Souza")
    stripe_api.add_customer("cus_ben", email="ben@example.com", name="Ben Ito")
    services.payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key="renewal:ana")
    services.payments.execute(action=Charge(customer="cus_ben", amount_cents=2900), key="renewal:ben")
    services.payments.execute(action=Refund(charge_key="renewal:ana", amount_cents=500), key="refund:ana")
    stripe_api.advance(40 * 86400)
    services.payments.execute(action=Charge(customer="cus_ana", amount_cents=1200), key="renewal:ana:2")
    sum_up_the_month(services, work)
    sum_up_the_month(services, work)
    assert (run_state(db, 1), run_state(db, 2)) == ("succeeded", "succeeded")
    with db.connection() as conn:
        rows = conn.execute("SELECT source, ref, amount_cents, counterparty, category FROM books_transactions "
                            "ORDER BY at, id").fetchall()
    assert [(r["source"], r["amount_cents"], r["counterparty"], r["category"]) for r in rows] == [
        ("stripe", 1200, "cus_ana", "revenue"), ("stripe", 2900, "cus_ben", "revenue"),
        ("stripe", -500, "cus_ana", "refunds")]
    assert [r["ref"][:3] for r in rows] == ["ch_", "ch_", "re_"]
    assert "income $41.00, expenses $5.00, net $36.00" in last_report(db)
    assert "0 new payments from Stripe" in last_report(db)


def test_a_month_on_the_sandbox_is_imported_once_under_its_name(services, db, work):
    """The sandbox's ledger goes through the same read: its rows under source `sandbox`, once after two runs."""
    services.payments.execute(action=Charge(customer="c-ana", amount_cents=1200), key="sub:c-ana:1")
    services.payments.execute(action=Refund(charge_key="sub:c-ana:1"), key="refund:c-ana")
    sum_up_the_month(services, work)
    sum_up_the_month(services, work)
    assert count(db, "books_transactions", "source = 'sandbox'") == 2
    assert "income $12.00, expenses $12.00, net $0.00" in last_report(db)
