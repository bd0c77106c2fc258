"""Workflow files run by the engine on the embedded stack: approvals, keys per item, crash and resume, undoing."""
from __future__ import annotations

import pytest

from orchestrator import Decision, engine, steps
from orchestrator.chat import intake
from orchestrator.workflows import WORKFLOWS
from orchestrator.workflows.declared import read_file
from tests.orchestrator.helpers import OPERATOR, count, operations, pending_approval, run_state

ORDER = {"contact_id": "c-new", "email": "nina@example.com", "name": "Nina Park", "plan": "yearly"}


def start(services, workflow: str, params: dict) -> None:
    intake.start(services, OPERATOR, request=f"run {workflow}", kind=workflow, workflow=workflow, params=params)


def approve(services, db, work) -> None:
    operations(services).decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()


def emails(settings) -> int:
    return len(list(settings.outbox_email_dir.glob("*.eml")))


def install(monkeypatch, tmp_path, body: str) -> None:
    path = tmp_path / "flow.toml"
    path.write_text('name = "my_flow"\ntitle = "my flow"\n' + body)
    monkeypatch.setitem(WORKFLOWS, "my_flow", read_file(path).workflow)


def test_order_fulfilment_runs_end_to_end_from_its_file(services, db, work, settings) -> None:
    """The gate asks first; policy still asks before the customer email; then the account, the email, the memory."""
    start(services, "order_fulfilment", ORDER)
    work()
    assert run_state(db, 1) == "awaiting_approval"
    assert services.crm.get("c-new") is None
    approve(services, db, work)
    assert run_state(db, 1) == "awaiting_approval"  # the welcome email: policy asks by effect, gate or not
    assert services.crm.get("c-new").plan == "yearly" and emails(settings) == 0
    approve(services, db, work)
    assert run_state(db, 1) == "succeeded"
    assert emails(settings) == 1
    found = services.memory.recall("Nina Park order yearly plan", k=3)
    assert any("ordered the yearly plan" in m.text for m in found)


def test_a_worker_killed_after_the_email_went_out_resumes_without_sending_it_again(services, db, work, settings,
                                                                                    monkeypatch) -> None:
    """The step ran but its success was never written (the worker died): the next attempt finds its key done."""
    start(services, "order_fulfilment", ORDER)
    work()
    approve(services, db, work)
    operations(services).decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)

    class Killed(BaseException):
        pass

    finish = steps.finish

    def dies_after_welcome(conn, *, run_id, name, state, **kwargs):
        if name == "welcome" and state is steps.StepState.SUCCEEDED:
            raise Killed
        return finish(conn, run_id=run_id, name=name, state=state, **kwargs)

    monkeypatch.setattr(steps, "finish", dies_after_welcome)
    with pytest.raises(Killed):
        engine.advance(services, 1)
    assert emails(settings) == 1 and run_state(db, 1) == "running"
    monkeypatch.setattr(steps, "finish", finish)
    assert engine.advance(services, 1).value == "succeeded"
    assert emails(settings) == 1
    assert count(db, "audit_events", "kind = 'step.started' AND payload->>'step' = 'welcome'") == 3


def test_a_failing_step_undoes_the_earlier_ones_newest_first(services, db, work, monkeypatch, tmp_path) -> None:
    install(monkeypatch, tmp_path, '''
[[step]]
name = "confirm"
do = "approval"
ask = "Set up {{ params.name }} and charge them?"

[[step]]
name = "provision"
do = "provision_account"
with = { contact_id = "{{ params.contact_id }}", email = "{{ params.email }}", name = "{{ params.name }}" }
compensate = "connector"

[[step]]
name = "charge"
do = "charge"
with = { customer = "{{ params.contact_id }}", amount_cents = 4900, description = "setup" }
compensate = "connector"

[[step]]
name = "tell"
do = "notify"
text = "charged {{ steps.charge.result.missing }}"
''')
    start(services, "my_flow", ORDER)
    work()
    approve(services, db, work)
    assert run_state(db, 1) == "compensated"
    with db.connection() as conn:
        undone = [r["step"] for r in conn.execute(
            "SELECT payload->>'step' AS step FROM audit_events WHERE kind = 'step.compensated' ORDER BY id")]
    assert undone == ["charge", "provision"]
    assert [e["kind"] for e in services.payments.ledger("c-new")] == ["charge", "refund"]
    assert services.crm.get("c-new").access != "active"


def test_a_for_each_step_keys_each_item_and_a_rerun_repeats_none(services, db, work, monkeypatch, tmp_path) -> None:
    from tests.orchestrator.helpers import seed

    seed(services, declining=None)
    install(monkeypatch, tmp_path, '''
[[step]]
name = "charge_each"
do = "charge"
for_each = "params.customers"
item_key = "{{ item.id }}"
with = { customer = "{{ item.id }}", amount_cents = "{{ item.cents }}", description = "renewal" }
compensate = "connector"
unattended = true
''')
    start(services, "my_flow", {"customers": [{"id": "c-fay", "cents": 1000}, {"id": "c-gus", "cents": 2000}]})
    work()
    assert run_state(db, 1) == "succeeded"
    charges = [(e["key"], e["amount_cents"]) for e in services.payments.ledger() if e["kind"] == "charge"]
    assert charges == [("run:1:charge_each:c-fay", 1000), ("run:1:charge_each:c-gus", 2000)]
    with db.connection() as conn:
        conn.execute("UPDATE steps SET state = 'running' WHERE run_id = 1")
        conn.execute("UPDATE runs SET state = 'running' WHERE id = 1")
    engine.advance(services, 1)
    assert len([e for e in services.payments.ledger() if e["kind"] == "charge"]) == 2


def test_a_condition_skips_its_step(services, db, work, monkeypatch, tmp_path) -> None:
    install(monkeypatch, tmp_path, '''
[[step]]
name = "tell"
do = "notify"
when = "params.plan == \\"yearly\\""
text = "a yearly order from {{ params.name }}"
''')
    start(services, "my_flow", {**ORDER, "plan": "monthly"})
    work()
    assert run_state(db, 1) == "succeeded"
    with db.connection() as conn:
        result = conn.execute("SELECT result FROM steps WHERE run_id = 1 AND name = 'tell'").fetchone()["result"]
    assert result == {"skipped": 'not params.plan == "yearly"'}


def test_workflows_in_chat_lists_python_and_file_workflows(services) -> None:
    reply = operations(services).handle_text(OPERATOR, "workflows")
    assert "• order_fulfilment (orchestrator/workflows/files/order_fulfilment.toml): an order" in reply.text
    assert "• winback (Python, orchestrator/workflows): email lapsed subscribers" in reply.text
