"""The sandbox CRM: access changes and provisioning are idempotent by key and compensated back to what they were."""
import pytest

from connectors import AccessChange, ConnectorError, Contact, Provision, SandboxCrm, StatusChange, UnknownRecord


def test_pause_access_once_per_key_and_compensate_restores_it(db):
    crm = SandboxCrm(db)
    crm.upsert([Contact(id="c-1", email="a@example.com", name="A", plan="monthly", status="lapsed",
                        monthly_cents=1200)])
    crm.execute(action=AccessChange(contact_id="c-1", access="paused"), key="k")
    crm.execute(action=AccessChange(contact_id="c-1", access="paused"), key="k")
    assert crm.get("c-1").access == "paused"
    assert crm.compensate(key="k") == "access of c-1 back to active"
    assert crm.get("c-1").access == "active"


def test_a_contact_becomes_lapsed_once_per_key_and_compensation_puts_the_status_back(db):
    crm = SandboxCrm(db)
    crm.upsert([Contact(id="c-1", email="a@example.com", name="A", plan="monthly", status="active",
                        monthly_cents=1200)])
    first = crm.execute(action=StatusChange(contact_id="c-1", status="lapsed"), key="k")
    again = crm.execute(action=StatusChange(contact_id="c-1", status="lapsed"), key="k")
    assert (first.previous, first.duplicate, again.duplicate) == ("active", False, True)
    assert crm.get("c-1").status == "lapsed"
    assert crm.compensate(key="k") == "c-1 back to active"
    assert crm.get("c-1").status == "active"
    with pytest.raises(UnknownRecord):
        crm.execute(action=StatusChange(contact_id="c-404", status="lapsed"), key="k2")


def _lapsed(crm: SandboxCrm) -> None:
    crm.upsert([Contact(id="c-1", email="a@example.com", name="A", plan="monthly", status="lapsed",
                        access="paused", monthly_cents=1200, notes="prefers email")])


def test_provision_account_twice_with_one_key_provisions_once(db):
    crm = SandboxCrm(db)
    first = crm.execute(action=Provision(contact_id="c-new", email="n@example.com", name="N", plan="yearly"),
                        key="run:1:execute:0:provision_account:c-new")
    # Paused in between: a repeat of the same key must not switch the account back on.
    crm.execute(action=AccessChange(contact_id="c-new", access="paused"), key="other")
    second = crm.execute(action=Provision(contact_id="c-new", email="n@example.com", name="N", plan="yearly"),
                         key="run:1:execute:0:provision_account:c-new")
    assert first.created and not first.duplicate
    assert second.duplicate and second.created
    contact = crm.get("c-new")
    assert (contact.plan, contact.status, contact.access) == ("yearly", "active", "paused")


def test_compensating_a_new_account_suspends_its_access(db):
    crm = SandboxCrm(db)
    crm.execute(action=Provision(contact_id="c-new", email="n@example.com", name="N"), key="k")
    assert crm.compensate(key="k") == "account of c-new suspended"
    assert crm.get("c-new").access == "paused"
    assert crm.compensate(key="k") == "already undone"


def test_provisioning_an_existing_customer_keeps_their_record_and_compensation_restores_it(db):
    crm = SandboxCrm(db)
    _lapsed(crm)
    result = crm.execute(action=Provision(contact_id="c-1", email="other@example.com", name="B", plan="yearly"),
                         key="k")
    contact = crm.get("c-1")
    assert not result.created
    assert (contact.plan, contact.status, contact.access) == ("yearly", "active", "active")
    assert (contact.email, contact.name, contact.monthly_cents, contact.notes) == (
        "a@example.com", "A", 1200, "prefers email")
    assert crm.compensate(key="k") == "account of c-1 back to monthly, lapsed"
    contact = crm.get("c-1")
    assert (contact.plan, contact.status, contact.access) == ("monthly", "lapsed", "paused")


def test_access_change_for_an_unknown_contact_is_refused_and_claims_no_key(db):
    crm = SandboxCrm(db)
    with pytest.raises(UnknownRecord) as refused:
        crm.execute(action=AccessChange(contact_id="c-nobody", access="paused"), key="k")
    assert isinstance(refused.value, ConnectorError) and refused.value.record == "c-nobody"
    assert crm.compensate(key="k") == "nothing was changed"
