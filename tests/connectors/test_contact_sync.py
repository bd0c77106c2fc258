"""What a Stripe customer and its subscriptions make of a contact (pure), table-driven."""
import pytest

from connectors import StripeCustomer, StripeSubscription, synced_contact


def sub(status: str, amount: int = 1000, interval: str = "month") -> StripeSubscription:
    return StripeSubscription(id=f"sub_{status}", customer="cus_1", status=status, amount_cents=amount,
                              interval=interval)


@pytest.mark.parametrize(("subscriptions", "expected"), [
    ([sub("active")], ("active", "monthly", 1000)),
    ([sub("past_due")], ("active", "monthly", 1000)),
    ([sub("trialing")], ("active", "monthly", 1000)),
    ([sub("canceled", 1200, "year")], ("lapsed", "annual", 100)),
    ([sub("unpaid")], ("lapsed", "monthly", 1000)),
    ([], ("lapsed", None, None)),
    # A customer who cancelled an old plan and pays for a newer one is active on the one they pay for.
    ([sub("canceled", 500), sub("active", 4900)], ("active", "monthly", 4900)),
    ([sub("active", 12000, "year"), sub("canceled", 500)], ("active", "annual", 1000)),
])
def test_a_customers_subscriptions_decide_status_plan_and_monthly_amount(subscriptions, expected):
    contact = synced_contact(StripeCustomer(id="cus_1", email="a@example.com", name="A"), subscriptions)
    assert contact is not None
    assert (contact.status, contact.plan, contact.monthly_cents) == expected
    assert contact.stripe_customer_id == "cus_1"


def test_a_customer_without_an_email_address_makes_no_contact():
    assert synced_contact(StripeCustomer(id="cus_1", email=None), [sub("active")]) is None
