"""The action registry: an action type reaches its one connector with its one model, or is refused by name."""
import pytest

from connectors import (
    AccessChange,
    ActionRegistry,
    Charge,
    ConnectorError,
    Contact,
    Route,
    SandboxCrm,
    SandboxPayments,
    UnknownAction,
)


def _registry(db) -> ActionRegistry:
    return ActionRegistry({
        "pause_access": Route(SandboxCrm(db), AccessChange, reversible=True),
        "charge": Route(SandboxPayments(db), Charge, reversible=True),
    })


def test_unknown_action_type_is_refused_with_a_clear_error(db):
    registry = _registry(db)
    with pytest.raises(UnknownAction) as refused:
        registry.execute("teleport", action=Charge(customer="c-1", amount_cents=100), key="k")
    assert isinstance(refused.value, ConnectorError)
    assert str(refused.value) == "no connector carries “teleport” actions (known: charge, pause_access)"
    assert refused.value.action_type == "teleport" and refused.value.known == ("charge", "pause_access")
    with pytest.raises(UnknownAction):
        registry.compensate("teleport", key="k")
    assert SandboxPayments(db).ledger() == []


def test_an_action_of_another_model_never_reaches_the_connector(db):
    registry = _registry(db)
    with pytest.raises(UnknownAction) as refused:
        registry.execute("charge", action=AccessChange(contact_id="c-1", access="paused"), key="k")
    assert str(refused.value) == "“charge” takes Charge, not AccessChange"
    assert SandboxPayments(db).ledger() == []


def test_an_action_type_runs_on_its_connector_once_per_key_and_compensates_there(db):
    registry = _registry(db)
    crm = SandboxCrm(db)
    crm.upsert([Contact(id="c-1", email="a@example.com", name="A", plan="monthly", status="active",
                        monthly_cents=1200)])
    first = registry.execute("pause_access", action=AccessChange(contact_id="c-1", access="paused"), key="k")
    second = registry.execute("pause_access", action=AccessChange(contact_id="c-1", access="paused"), key="k")
    assert not first.duplicate and second.duplicate and crm.get("c-1").access == "paused"
    assert registry.compensate("pause_access", key="k") == "access of c-1 back to active"
    assert crm.get("c-1").access == "active"
