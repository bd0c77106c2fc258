"""Each new intent kind end to end on a real RQ worker, offline tier: understand, propose, screen, act, report."""
from datetime import UTC, datetime, timedelta

from connectors import AccessChange, Charge
from orchestrator import Classification, Decision, Operations
from orchestrator.workflows.bookkeeping import BankLine, add_bank_lines
from tests.orchestrator.helpers import OPERATOR, count, pending_approval, run_state, seed


class OneKind:
    """Stands in for the embedding router: every request is the kind under test."""

    def __init__(self, kind: str, workflow: str | None = None) -> None:
        self.kind, self.workflow = kind, workflow or kind

    def classify(self, text: str) -> Classification:
        return Classification(kind=self.kind, workflow=self.workflow, confidence=1.0)


def submit(services, kind: str, text: str) -> Operations:
    ops = Operations(services, OneKind(kind))
    ops.submit(OPERATOR, text)
    return ops


def outbox(db, kind: str | None = None) -> list[dict]:
    with db.connection() as conn:
        rows = conn.execute("SELECT kind, message FROM outbox ORDER BY id").fetchall()
    return [r["message"] for r in rows if kind is None or r["kind"] == kind]


def report_text(db) -> str:
    [report] = outbox(db, "report")
    return "\n".join(f"{f['label']}: {f['value']}" for s in report["sections"] for f in s["facts"])


def test_account_pause_pauses_the_named_customer_only(services, db, work):
    """The customer comes from the request, resolved in the CRM; the action runs through the CRM connector."""
    seed(services, declining=None)
    submit(services, "account_pause", "put Ben Okafor's subscription on hold")
    work()
    assert run_state(db, 1) == "succeeded"
    assert services.crm.get("c-ben").access == "paused"
    assert services.crm.get("c-ana").access == "active"
    assert "pause c-ben's access (access paused)" in report_text(db)


def test_account_resume_restores_access(services, db, work):
    seed(services, declining=None)
    services.crm.upsert([services.crm.get("c-ana").model_copy(update={"access": "paused"})])
    submit(services, "account_resume", "restore access for ana@example.com now that she paid")
    work()
    assert run_state(db, 1) == "succeeded"
    assert services.crm.get("c-ana").access == "active"


def test_missing_customer_is_asked_for_and_nothing_runs(services, db, work):
    """No customer in the request: opsos asks in chat and stops before any action, rather than guess one."""
    seed(services, declining=None)
    submit(services, "account_pause", "pause a customer's access")
    work()
    assert run_state(db, 1) == "cancelled"
    [question] = outbox(db, "notice")
    assert question["title"].startswith("Which customer?")
    assert all(services.crm.get(c).access == "active" for c in ("c-ana", "c-ben", "c-eve"))
    assert count(db, "audit_events", "kind = 'params.missing'") == 1


def test_unknown_customer_is_asked_about_not_invented(services, db, work):
    seed(services, declining=None)
    submit(services, "account_pause", "pause the account of Zoe Quinn")
    work()
    assert run_state(db, 1) == "cancelled"
    [question] = outbox(db, "notice")
    assert "no single customer matching “Zoe Quinn”" in question["text"]


def test_refund_waits_for_approval_then_refunds_once(services, db, work):
    """Refunds need an approval bound to the exact charge; after it the payments connector refunds once."""
    seed(services, declining=None)
    services.payments.execute(action=Charge(customer="c-ana", amount_cents=1200), key="sub:c-ana:1")
    ops = submit(services, "refund_customer", "refund the last payment for Ana Souza")
    work()
    assert run_state(db, 1) == "awaiting_approval"
    assert [e["kind"] for e in services.payments.ledger("c-ana")] == ["charge"]
    [ask] = outbox(db, "approval_request")
    assert "refund $12.00 to c-ana (charge sub:c-ana:1)" in str(ask)
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert [e["kind"] for e in services.payments.ledger("c-ana")] == ["charge", "refund"]


def test_outreach_email_is_sent_to_the_contact_after_approval(services, db, work, settings):
    seed(services, declining=None)
    ops = submit(services, "outreach_email", "write to Chloé Martin about our new annual plan")
    work()
    assert run_state(db, 1) == "awaiting_approval"
    assert not list(settings.outbox_email_dir.glob("*.eml"))
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    [eml] = list(settings.outbox_email_dir.glob("*.eml"))
    text = eml.read_text()
    assert "chloe@example.com" in text and "Hi Chlo" in text


def test_content_post_is_handed_to_the_operator(services, db, work):
    submit(services, "content_post", "draft a blog post about pricing for solo founders")
    work()
    assert run_state(db, 1) == "succeeded"
    [ready] = [m for m in outbox(db, "notice") if m["title"].startswith("Ready to publish")]
    assert "Pricing for solo founders" in ready["title"]


def test_bookkeeping_categorises_the_month_and_sums_it(services, db, work):
    """Payments come from the ledger, bank lines from the sandbox; the agent categorises, code does the sums."""
    now = datetime.now(UTC)
    services.payments.execute(action=Charge(customer="c-ana", amount_cents=1200), key="sub:c-ana:1")
    add_bank_lines(db, [
        BankLine(ref="b1", at=now - timedelta(minutes=5), amount_cents=-2000, counterparty="Hetzner", memo="server"),
        BankLine(ref="b2", at=now - timedelta(minutes=4), amount_cents=-900, counterparty="GitHub", memo="team"),
    ])
    submit(services, "bookkeeping_summary", "categorise this month's transactions")
    work()
    assert run_state(db, 1) == "succeeded"
    with db.connection() as conn:
        rows = conn.execute("SELECT counterparty, category FROM books_transactions").fetchall()
    categories = {r["counterparty"]: r["category"] for r in rows}
    assert categories == {"c-ana": "revenue", "Hetzner": "hosting", "GitHub": "software"}
    text = report_text(db)
    assert "income $12.00, expenses $29.00, net -$17.00" in text


class WorkerDied(BaseException):
    """A worker killed mid-step: not an Exception, so the engine neither records the step nor compensates."""


def die_after(monkeypatch, calls: int) -> None:
    """Kill the worker right after the `calls`-th connector action of a step, before its outcome is recorded."""
    from orchestrator import words

    seen = []
    original = words.action_outcome

    def outcome(result):
        seen.append(result)
        if len(seen) == calls:
            raise WorkerDied
        return original(result)

    monkeypatch.setattr(words, "action_outcome", outcome)


def step_result(db, name: str) -> dict:
    with db.connection() as conn:
        return conn.execute("SELECT result FROM steps WHERE run_id = 1 AND name = %s", (name,)).fetchone()["result"]


def keyed_actions(db, connector: str) -> list[dict]:
    with db.connection() as conn:
        return conn.execute("SELECT key, state, attempts FROM connector_actions WHERE connector = %s ORDER BY key",
                            (connector,)).fetchall()


def test_bookkeeping_rerun_after_a_crash_between_categorisations_categorises_each_once(services, db, work,
                                                                                      monkeypatch):
    """The worker dies after two of three categorisations; the re-run finds those two done by their keys."""
    import pytest

    from orchestrator import engine

    now = datetime.now(UTC)
    services.payments.execute(action=Charge(customer="c-ana", amount_cents=1200), key="sub:c-ana:1")
    add_bank_lines(db, [
        BankLine(ref="b1", at=now - timedelta(minutes=5), amount_cents=-2000, counterparty="Hetzner", memo="server"),
        BankLine(ref="b2", at=now - timedelta(minutes=4), amount_cents=-900, counterparty="GitHub", memo="team"),
    ])
    submit(services, "bookkeeping_summary", "categorise this month's transactions")
    die_after(monkeypatch, 2)
    with pytest.raises(WorkerDied):
        engine.advance(services, 1)
    assert [a["state"] for a in keyed_actions(db, "books")] == ["done", "done"]
    monkeypatch.undo()
    work()
    assert run_state(db, 1) == "succeeded"
    outcomes = [d["outcome"] for d in step_result(db, "execute")["done"]]
    assert outcomes == ["already categorised", "already categorised", "categorised"]
    assert [(a["state"], a["attempts"]) for a in keyed_actions(db, "books")] == [("done", 1)] * 3
    with db.connection() as conn:
        rows = conn.execute("SELECT counterparty, category FROM books_transactions").fetchall()
    assert {r["counterparty"]: r["category"] for r in rows} == {"c-ana": "revenue", "Hetzner": "hosting",
                                                                 "GitHub": "software"}


def test_provisioning_rerun_after_a_crash_provisions_once(services, db, work, monkeypatch):
    """The fulfilment workflow for provisioning, killed after the CRM acted: the re-run does not act again."""
    import pytest

    from agents import AccountParams
    from orchestrator import engine
    from orchestrator.workflows import WORKFLOWS
    from orchestrator.workflows.accounts import _account_workflow

    provision = _account_workflow("account_provision", "account provision", "provision a customer's account",
                                  "provision", "provision_account", AccountParams, "Provision an account")
    monkeypatch.setitem(WORKFLOWS, "account_provision", provision)
    seed(services, declining=None)
    Operations(services, OneKind("account_pause", "account_provision")).submit(OPERATOR, "set up Ben Okafor's account")
    with monkeypatch.context() as crash:
        die_after(crash, 1)
        with pytest.raises(WorkerDied):
            engine.advance(services, 1)
    # Paused by hand while the run was down: a second provisioning would switch it back on.
    services.crm.execute(action=AccessChange(contact_id="c-ben", access="paused"), key="by-hand")
    work()
    assert run_state(db, 1) == "succeeded"
    [done] = step_result(db, "execute")["done"]
    assert done["outcome"] == "account already provisioned"
    assert services.crm.get("c-ben").access == "paused"
    assert [(a["state"], a["attempts"]) for a in keyed_actions(db, "crm") if a["key"] != "by-hand"] == [("done", 1)]


def test_a_failure_after_categorising_puts_the_categories_back(services, db, work, monkeypatch):
    """Compensation goes through the registry too: a later step that breaks undoes the agent's categories."""
    from orchestrator.workflows import WORKFLOWS, bookkeeping
    from orchestrator.workflows.model import Step

    def explode(ctx):
        raise ValueError("the totals did not add up")

    flow = bookkeeping.BOOKKEEPING_SUMMARY
    broken = flow.__class__(name=flow.name, title=flow.title, describe=flow.describe,
                            steps=(*flow.steps[:-1], Step("summarise", bookkeeping.Effect.READ, explode)))
    monkeypatch.setitem(WORKFLOWS, flow.name, broken)
    add_bank_lines(db, [BankLine(ref="b1", at=datetime.now(UTC) - timedelta(minutes=5), amount_cents=-2000,
                                 counterparty="Hetzner", memo="server")])
    submit(services, "bookkeeping_summary", "categorise this month's transactions")
    work()
    assert run_state(db, 1) == "compensated"
    with db.connection() as conn:
        assert conn.execute("SELECT category FROM books_transactions").fetchone()["category"] is None
    [alert] = outbox(db, "alert")
    assert "back to uncategorised" in alert["text"]
