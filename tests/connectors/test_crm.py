"""The sandbox CRM: access changes are idempotent by key and compensated back to what they were."""
from connectors import AccessChange, Contact, SandboxCrm


def test_pause_access_once_per_key_and_compensate_restores_it(db):
    crm = SandboxCrm(db)
    crm.upsert([Contact(id="c-1", email="a@example.com", name="A", plan="monthly", status="lapsed",
                        monthly_cents=1200)])
    crm.execute(action=AccessChange(contact_id="c-1", access="paused"), key="k")
    crm.execute(action=AccessChange(contact_id="c-1", access="paused"), key="k")
    assert crm.get("c-1").access == "paused"
    assert crm.compensate(key="k") == "access of c-1 back to active"
    assert crm.get("c-1").access == "active"
