"""`screen`, table-driven: which proposed actions a request may run, and the reason it gives for the others."""
import pytest

from orchestrator.workflows.proposals import Scope, screen

SCOPE = Scope(
    customers=["c-ana", "c-bob"],
    charges={"pay-1": {"customer": "c-ana", "amount_cents": 2000}},
    transactions=[7],
)
EVERY_KIND = frozenset({"send_email", "charge", "refund", "pause_access", "resume_access", "provision_account",
                        "post_content", "categorise"})


def email(to: str) -> dict:
    return {"type": "send_email", "to": to, "subject": "We miss you", "body": "Come back"}


def refund(customer: str, charge_key: str, amount_cents: int) -> dict:
    return {"type": "refund", "customer": customer, "charge_key": charge_key, "amount_cents": amount_cents,
            "reason": ""}


@pytest.mark.parametrize(("action", "allowed", "reason"), [
    pytest.param(email("c-ana"), EVERY_KIND, None, id="email to the request's customer"),
    pytest.param(email("c-eve"), EVERY_KIND,
                 "email c-eve: “We miss you”: c-eve is not the customer this request is about",
                 id="email to someone else"),
    pytest.param(email("c-ana"), frozenset({"refund"}), "email c-ana: “We miss you”: not something this request may do",
                 id="a kind the workflow does not allow"),
    pytest.param({"type": "delete_everything"}, EVERY_KIND | {"delete_everything"},
                 "delete_everything: not something this request may do", id="a kind no policy knows"),
    pytest.param(refund("c-ana", "pay-1", 2000), EVERY_KIND, None, id="full refund of the customer's charge"),
    pytest.param(refund("c-ana", "pay-1", 1000), EVERY_KIND,
                 "refund $10.00 to c-ana (charge pay-1): only full refunds ($20.00) are supported",
                 id="partial refund"),
    pytest.param(refund("c-ana", "pay-9", 2000), EVERY_KIND,
                 "refund $20.00 to c-ana (charge pay-9): not a refundable charge of c-ana", id="refund of no charge"),
    pytest.param(refund("c-bob", "pay-1", 2000), EVERY_KIND,
                 "refund $20.00 to c-bob (charge pay-1): not a refundable charge of c-bob",
                 id="refund of another customer's charge"),
    pytest.param(refund("c-eve", "pay-1", 2000), EVERY_KIND,
                 "refund $20.00 to c-eve (charge pay-1): c-eve is not the customer this request is about",
                 id="refund to someone outside the request"),
    pytest.param({"type": "charge", "customer": "c-bob", "amount_cents": 840, "description": ""}, EVERY_KIND, None,
                 id="charge a customer in scope"),
    pytest.param({"type": "pause_access", "customer": "c-ana"}, EVERY_KIND, None, id="pause access in scope"),
    pytest.param({"type": "resume_access", "customer": "c-eve"}, EVERY_KIND,
                 "resume c-eve's access: c-eve is not the customer this request is about",
                 id="resume access outside the request"),
    pytest.param({"type": "provision_account", "customer": "c-new", "email": "new@example.com", "name": "New",
                  "plan": "monthly"}, EVERY_KIND,
                 "provision an account for New <new@example.com>: c-new is not the customer this request is about",
                 id="provision for a customer the orchestrator did not resolve"),
    pytest.param({"type": "post_content", "channel": "blog", "title": "Spring", "body": "…"}, EVERY_KIND, None,
                 id="a post names no customer"),
    pytest.param({"type": "categorise", "transaction_id": 7, "category": "software"}, EVERY_KIND, None,
                 id="categorise a transaction of the period"),
    pytest.param({"type": "categorise", "transaction_id": 8, "category": "software"}, EVERY_KIND,
                 "transaction 8 → software: not a transaction of this period", id="categorise another transaction"),
])
def test_screen(action: dict, allowed: frozenset[str], reason: str | None) -> None:
    assert screen(action, allowed, SCOPE) == reason


def test_an_empty_scope_refuses_every_action_that_names_someone() -> None:
    assert screen(email("c-ana"), EVERY_KIND, Scope()) == (
        "email c-ana: “We miss you”: c-ana is not the customer this request is about")


def pause_billing(customer: str, subscription: str) -> dict:
    return {"type": "pause_collection", "customer": customer, "subscription": subscription}


ON_STRIPE = Scope(customers=["c-ana"], subscriptions={"sub_ana": "c-ana", "sub_bob": "c-bob"})
PAUSES = frozenset({"pause_access", "pause_collection"})


@pytest.mark.parametrize(("action", "carried", "reason"), [
    pytest.param(pause_billing("c-ana", "sub_ana"), None, None, id="the customer's own subscription"),
    pytest.param(pause_billing("c-ana", "sub_bob"), None,
                 "pause billing of c-ana's Stripe subscription sub_bob: not a Stripe subscription of c-ana",
                 id="another customer's subscription, named for this one"),
    pytest.param(pause_billing("c-ana", "sub_eve"), None,
                 "pause billing of c-ana's Stripe subscription sub_eve: not a Stripe subscription of c-ana",
                 id="a subscription nobody looked up"),
    pytest.param(pause_billing("c-ana", "sub_ana"), frozenset({"pause_access"}),
                 "pause billing of c-ana's Stripe subscription sub_ana: subscriptions are paused, resumed and "
                 "cancelled at Stripe, and payments run on the sandbox (set OPSOS_PAYMENTS=stripe)",
                 id="on the sandbox, which carries no subscription actions"),
])
def test_screen_subscription_actions(action, carried, reason):
    assert screen(action, PAUSES, ON_STRIPE, carried=carried) == reason
