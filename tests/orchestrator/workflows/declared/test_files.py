"""Workflow files at load: valid ones compile, broken ones are refused with the file, the step and the field."""
from __future__ import annotations

import pytest

from orchestrator.policy import Effect
from orchestrator.workflows import WORKFLOWS, add_operator_workflows
from orchestrator.workflows.declared import CONNECTOR_ACTIONS, SHIPPED_DIR, WorkflowFileError, read_file

GATE = '''
[[step]]
name = "confirm"
do = "approval"
ask = "Charge {{ params.name }}?"
'''
CHARGE = '''
[[step]]
name = "charge"
do = "charge"
with = { customer = "{{ params.customer }}", amount_cents = 1200 }
compensate = "connector"
'''


def write(tmp_path, body: str, name: str = "flow.toml", workflow: str = "my_flow"):
    path = tmp_path / name
    path.write_text(f'name = "{workflow}"\ntitle = "my flow"\n{body}')
    return path


def test_a_valid_file_compiles_to_the_engines_workflow(tmp_path) -> None:
    loaded = read_file(write(tmp_path, GATE + CHARGE))
    workflow = loaded.workflow
    assert [s.name for s in workflow.steps] == ["confirm", "charge"]
    # The gate stands for what it lets happen; the charge is undone by its connector.
    assert [s.effect for s in workflow.steps] == [Effect.CHARGE, Effect.CHARGE]
    assert workflow.steps[0].compensate is None and workflow.steps[1].compensate is not None


def test_a_wrong_field_type_names_the_file_the_step_and_the_field(tmp_path) -> None:
    """pydantic's error, wrapped: which file, which step (by its name, not its position), which field."""
    path = write(tmp_path, GATE + CHARGE.replace('compensate = "connector"', 'compensate = "connector"\ntier = 3'))
    with pytest.raises(WorkflowFileError) as refused:
        read_file(path)
    assert str(refused.value) == f"{path}: step “charge”: tier: Input should be 'draft' or 'reason'"


def test_a_misspelt_field_and_an_unknown_action_are_named(tmp_path) -> None:
    path = write(tmp_path, GATE + CHARGE.replace('do = "charge"', 'do = "chrage"') + '\n[[step]]\nname = "x"\n'
                 'do = "notify"\ntext = "hi"\ncolour = "red"\n')
    with pytest.raises(WorkflowFileError) as refused:
        read_file(path)
    assert str(refused.value) == f"{path}: step “x”: colour: not a field of a workflow file here"
    path.write_text(path.read_text().replace('colour = "red"\n', ""))
    with pytest.raises(WorkflowFileError) as refused:
        read_file(path)
    assert str(refused.value).startswith(f"{path}: step “charge”: do: “chrage” is not in the catalogue (known: agent")


def test_a_side_effect_with_no_approval_gate_before_it_is_refused(tmp_path) -> None:
    path = write(tmp_path, CHARGE)
    with pytest.raises(WorkflowFileError) as refused:
        read_file(path)
    assert str(refused.value) == (f"{path}: step “charge”: do: charge with no approval gate before it: add an "
                                  "approval step before it, or say unattended = true")


def test_a_gate_that_may_be_skipped_does_not_count(tmp_path) -> None:
    path = write(tmp_path, GATE.replace('do = "approval"', 'do = "approval"\nwhen = "params.careful"') + CHARGE)
    with pytest.raises(WorkflowFileError, match="charge with no approval gate before it"):
        read_file(path)


def test_unattended_says_so_explicitly_and_is_accepted(tmp_path) -> None:
    loaded = read_file(write(tmp_path, CHARGE.replace('compensate = "connector"',
                                                      'compensate = "connector"\nunattended = true')))
    assert [s.name for s in loaded.workflow.steps] == ["charge"]


def test_an_irreversible_step_needs_a_reason_and_connector_undo_needs_a_reversible_route(tmp_path) -> None:
    email = ('\n[[step]]\nname = "tell"\ndo = "send_email"\n'
             'with = { to = "{{ params.email }}", subject = "s", body = "b" }\n')
    path = write(tmp_path, GATE + email)
    with pytest.raises(WorkflowFileError) as refused:
        read_file(path)
    assert str(refused.value) == (f"{path}: step “tell”: compensate: send_email names no compensation: say compensate "
                                  "= \"connector\" or an action that undoes it, or irreversible = \"why\"")
    path.write_text(path.read_text() + 'compensate = "connector"\n')
    with pytest.raises(WorkflowFileError, match="step “tell”: compensate: send_email cannot be taken back"):
        read_file(path)
    path.write_text(path.read_text().replace('compensate = "connector"', 'irreversible = "sent is sent"'))
    assert read_file(path).workflow.steps[1].compensate is None


def test_references_and_fields_are_checked_against_earlier_steps_and_the_action(tmp_path) -> None:
    body = GATE + CHARGE.replace('amount_cents = 1200', 'amount_cents = 0, colour = "{{ steps.later.x }}"')
    path = write(tmp_path, body)
    with pytest.raises(WorkflowFileError) as refused:
        read_file(path)
    assert [str(p) for p in refused.value.problems] == [
        f"{path}: step “charge”: with.colour: not a field of charge (its fields: amount_cents, currency, customer, "
        "description)",
        f"{path}: step “charge”: with.amount_cents: Input should be greater than 0",
        f"{path}: step “charge”: with: “steps.later.x”: no earlier step is named “later”",
    ]


def test_waiting_for_an_event_is_refused_until_the_engine_can(tmp_path) -> None:
    path = write(tmp_path, '[[step]]\nname = "hold"\ndo = "wait"\nevent = "payment.succeeded"\n')
    with pytest.raises(WorkflowFileError) as refused:
        read_file(path)
    assert str(refused.value) == (f"{path}: step “hold”: event: waiting for an event or a reply is not supported "
                                  "yet: wait until a time (until, after_minutes)")


def test_a_name_clash_with_a_shipped_workflow_names_both_files(tmp_path) -> None:
    path = write(tmp_path, GATE + CHARGE, workflow="order_fulfilment")
    with pytest.raises(WorkflowFileError) as refused:
        add_operator_workflows(tmp_path)
    shipped = WORKFLOWS["order_fulfilment"]
    assert shipped.steps[0].name == "confirm"
    assert str(refused.value) == (f"{path}: name: “order_fulfilment” is already the workflow of "
                                  f"{SHIPPED_DIR / 'order_fulfilment.toml'}")


def test_the_operators_folder_adds_its_workflows(tmp_path, monkeypatch) -> None:
    from orchestrator import workflows

    for table in ("WORKFLOWS", "FILES", "ORIGINS"):
        monkeypatch.setattr(workflows, table, dict(getattr(workflows, table)))

    assert add_operator_workflows(tmp_path) == []
    write(tmp_path, GATE + CHARGE)
    assert add_operator_workflows(tmp_path) == ["my_flow"]
    assert add_operator_workflows(tmp_path) == ["my_flow"]  # a second start re-reads it, no clash with itself
    assert workflows.WORKFLOWS["my_flow"].steps[1].name == "charge"


def test_the_catalogue_is_the_action_registry(services) -> None:
    """Every route the registry has is in the catalogue, with the same model and reversibility: a route added
    there without an entry here fails this test rather than be refused by every workflow file."""
    registry = services.connectors
    on_the_sandbox = {name for name, entry in CONNECTOR_ACTIONS.items() if not entry.needs_stripe}
    assert on_the_sandbox == set(registry.action_types)
    for name, entry in CONNECTOR_ACTIONS.items():
        if entry.needs_stripe:
            continue
        route = registry.route(name)
        assert (entry.model, entry.reversible) == (route.model, route.reversible), name
