"""The workflows Stripe's events start: dunning, fulfilment and lapse, with the approvals policy asks for."""
from __future__ import annotations

import json

from connectors import Contact
from orchestrator import Decision, inbound, intents, runs
from orchestrator.chat.intake import capabilities
from orchestrator.policy import Effect, Policy
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.dunning import resume_access
from tests.orchestrator.helpers import OPERATOR, count, operations, pending_approval, run_state
from tests.standins.stripe_signing import checkout_session, event, invoice

T0 = 1_760_000_000
ANA = Contact(id="cus_ana", email="ana@example.com", name="Ana Souza", plan="monthly", status="active",
              monthly_cents=2900)


def deliver(services, payload) -> None:
    inbound.receive(services, inbound.parse(json.dumps(payload)))


def last_failure() -> dict:
    return event("invoice.payment_failed", invoice(customer="cus_ana", subscription="sub_ana", attempt=4,
                                                   next_attempt=None), created=T0)


def test_a_pause_after_the_last_attempt_waits_for_the_operator_where_policy_asks(services, db, work) -> None:
    services.crm.upsert([ANA])
    services.policy = Policy(operators=services.policy.operators,
                             approval_required=services.policy.approval_required | {Effect.ACCESS})
    deliver(services, last_failure())
    work()
    assert run_state(db, 1) == "awaiting_approval"
    assert services.crm.get("cus_ana").access == "active"
    with db.connection() as conn:
        ask = conn.execute("SELECT message FROM outbox WHERE approval_id IS NOT NULL").fetchone()["message"]
    assert "Pause Ana Souza's access?" in json.dumps(ask)
    operations(services).decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert services.crm.get("cus_ana").access == "paused"


def test_the_dunning_pause_is_undone_by_its_compensation(services, db, work) -> None:
    """Should the run be unwound, its compensation puts access back to what it was before the pause."""
    services.crm.upsert([ANA])
    deliver(services, last_failure())
    work()
    assert services.crm.get("cus_ana").access == "paused"
    with db.connection() as conn:
        run, intent = runs.get(conn, 1), intents.get(conn, 1)
    ctx = StepContext(services=services, run=run, intent=intent, step="pause_access", results={})
    assert resume_access(ctx, {})["undone"] == "access of cus_ana back to active"
    assert services.crm.get("cus_ana").access == "active"


def test_a_welcome_the_operator_rejects_is_not_sent_and_the_paid_account_stays(services, db, work) -> None:
    """Rejecting the email cancels the run, undoing nothing: the customer paid, so their account stays on."""
    deliver(services, event("checkout.session.completed", checkout_session(
        customer="cus_bo", subscription="sub_bo", email="bo@example.com", name="Bo Lin"), created=T0))
    work()
    assert services.crm.get("cus_bo").access == "active"
    operations(services).decide(OPERATOR, pending_approval(db, 1), Decision.REJECTED)
    work()
    assert count(db, "connector_actions", "connector = 'email'") == 0
    assert run_state(db, 1) == "cancelled"
    assert services.crm.get("cus_bo").access == "active"


def test_workflows_only_events_start_are_not_offered_in_chat() -> None:
    offered = {title for title, _ in capabilities()}
    assert offered and not offered & {"dunning", "fulfilment", "subscription cancelled"}


def test_a_checkout_for_an_imported_contacts_address_provisions_that_contact_once(services, db, work, tmp_path):
    """Proves fulfilment reuses the contact already at the address: Bo was imported from a list (a lead, whom
    events do not find by address); his checkout and its first invoice make no second contact (before, the
    provision hit the unique address index and the run failed), link his Stripe id, and welcome him once."""
    from orchestrator import contacts

    people = tmp_path / "people.csv"
    people.write_text("email,name,status\nBO@example.com,Bo Lin,lead\n")
    contacts.import_csv(services, people, actor="console:operator")
    deliver(services, event("checkout.session.completed", checkout_session(
        customer="cus_bo", subscription="sub_bo", email="bo@example.com", name="Bo Lin"), created=T0))
    deliver(services, event("invoice.paid", invoice(customer="cus_bo", subscription="sub_bo", paid=True,
                                                    billing_reason="subscription_create", email="bo@example.com"),
                            created=T0 + 1))
    work()
    operations(services).decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert count(db, "crm_contacts") == 1 and count(db, "runs") == 1
    bo = services.crm.by_email("bo@example.com")
    assert (bo.id.startswith("c-"), bo.stripe_customer_id, bo.status, bo.access) == (True, "cus_bo", "active",
                                                                                       "active")
    assert count(db, "connector_actions", "connector = 'email'") == 1
    assert len(list(services.settings.outbox_email_dir.glob("*.eml"))) == 1
