"""Each new intent kind end to end on a real RQ worker, offline tier: understand, propose, screen, act, report."""
from datetime import UTC, datetime, timedelta

from connectors import Charge
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
        rows = conn.execute("SELECT counterparty, category FROM book_transactions").fetchall()
    categories = {r["counterparty"]: r["category"] for r in rows}
    assert categories == {"c-ana": "revenue", "Hetzner": "hosting", "GitHub": "software"}
    text = report_text(db)
    assert "income $12.00, expenses $29.00, net -$17.00" in text
