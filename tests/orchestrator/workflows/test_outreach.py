"""The outreach approval binds the address the email goes to, read from the CRM when it is sent, not the contact id."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest

from orchestrator import Classification, Decision, Fact, Operations, words
from orchestrator.approvals import Approval, ApprovalRequest, ApprovalState
from tests.orchestrator.helpers import OPERATOR, count, pending_approval, run_state, seed

REQUEST = "write to Chloé Martin about our new annual plan"
OLD, NEW = "chloe@example.com", "chloe.martin@studio.example"


class Outreach:
    def classify(self, text: str) -> Classification:
        return Classification(kind="outreach_email", workflow="outreach_email", confidence=1.0)


def ask_and_approve(services, work) -> Operations:
    """Run the outreach request to its approval (to Chloé's address as the CRM has it) and approve it."""
    ops = Operations(services, Outreach())
    ops.submit(OPERATOR, REQUEST)
    work()
    assert run_state(services.stores.pool, 1) == "awaiting_approval"
    ops.decide(OPERATOR, pending_approval(services.stores.pool, 1), Decision.APPROVED)
    return ops


def move(services, address: str) -> None:
    """Chloé's address changes in the CRM (the operator, or a sync, edits her record)."""
    services.crm.upsert([services.crm.get("c-chloe").model_copy(update={"email": address})])


def asks(db) -> list[dict]:
    with db.connection() as conn:
        return [r["message"] for r in conn.execute(
            "SELECT message FROM outbox WHERE kind = 'approval_request' ORDER BY id").fetchall()]


def sent_to(settings) -> list[str]:
    return [message_from_bytes(eml.read_bytes(), policy=policy.default)["To"]
            for eml in sorted(settings.outbox_email_dir.glob("*.eml"))]


def test_the_approval_shows_the_address_the_email_goes_to(services, db, work, settings):
    """The operator approves an address, not a contact id: the ask names chloe@example.com."""
    seed(services, declining=None)
    Operations(services, Outreach()).submit(OPERATOR, REQUEST)
    work()
    [ask] = asks(db)
    assert f"email c-chloe at {OLD}" in str(ask)


def test_an_address_changed_after_approval_sends_nothing_until_the_new_address_is_approved(
        services, db, work, settings):
    """Proves the approval binds the resolved address: approved for chloe@example.com, then her address changes
    before the send step runs. No email goes to either address; a new approval names the new address and what
    changed; approving it sends one email, to the new address. Before, the step sent to the new address under
    the approval of the old one (the digest bound only the contact id)."""
    seed(services, declining=None)
    ops = ask_and_approve(services, work)
    move(services, NEW)
    work()
    assert run_state(db, 1) == "awaiting_approval"
    assert sent_to(settings) == []
    _, again = asks(db)
    assert again["title"].startswith("Approval needed again for run #1")
    facts = {f["label"]: f["value"] for s in again["sections"] for f in s["facts"]}
    assert NEW in facts["1."] and OLD not in facts["1."]
    assert OLD in facts["Changed since you approved"]
    assert "You approved this at" in again["text"]
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert sent_to(settings) == [NEW]
    with db.connection() as conn:
        [requested] = conn.execute("SELECT payload FROM audit_events WHERE kind = 'approval.requested'"
                                   " AND payload ? 'supersedes'").fetchall()
        first_id = conn.execute("SELECT id FROM approvals WHERE run_id = 1 ORDER BY requested_at, id"
                                " LIMIT 1").fetchone()["id"]
    assert requested["payload"]["supersedes"] == first_id


def test_a_replaced_approval_does_not_come_back_when_the_address_changes_back(services, db, work, settings):
    """Proves a replaced approval lets nothing run: approved for the old address, re-asked for the new one and
    approved, then the address goes back to the old one before the send. The first approval's digest matches
    again, but it was replaced, so the step asks once more instead of sending."""
    seed(services, declining=None)
    ops = ask_and_approve(services, work)
    move(services, NEW)
    work()
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    move(services, OLD)
    work()
    assert run_state(db, 1) == "awaiting_approval"
    assert sent_to(settings) == []
    assert len(asks(db)) == 3


def test_an_unchanged_email_approved_once_is_sent_once_without_a_second_ask(services, db, work, settings):
    seed(services, declining=None)
    ask_and_approve(services, work)
    work()
    assert run_state(db, 1) == "succeeded"
    assert sent_to(settings) == [OLD]
    assert len(asks(db)) == 1 and count(db, "approvals") == 1


def _approved(facts: dict[str, str], preview: str = "Hi") -> Approval:
    at = datetime(2026, 3, 10, 9, tzinfo=UTC)
    return Approval(id="a0000000001", run_id=1, step="execute", action_digest="d" * 64,
                    request=ApprovalRequest(what="Send", why="Asked.", preview=preview,
                                            facts=[Fact(label=k, value=v) for k, v in facts.items()]),
                    state=ApprovalState.APPROVED, requested_at=at, expires_at=at + timedelta(hours=1),
                    decided_by="console:operator", decided_at=at, decided_via="console")


@pytest.mark.parametrize(("before", "now", "preview", "changed"), [
    ({"1.": "email c-chloe at old@x"}, {"1.": "email c-chloe at new@x"}, "Hi", "1. was: email c-chloe at old@x"),
    ({"1.": "a"}, {"1.": "a", "2.": "b"}, "Hi", "2. is new"),
    ({"1.": "a", "2.": "b"}, {"1.": "a"}, "Hi", "2. was: b"),
    ({"1.": "a"}, {"1.": "a"}, "Hello", "the text in the preview changed"),
    ({"1.": "a"}, {"1.": "a"}, "Hi", "details not among the lines above"),
])
def test_asked_again_says_what_changed_line_by_line(before, now, preview, changed) -> None:
    ask = ApprovalRequest(what="Send", why="Asked.", preview=preview,
                          facts=[Fact(label=k, value=v) for k, v in now.items()])
    again = words.asked_again(ask, _approved(before))
    assert again.supersedes == "a0000000001"
    assert again.why == "You approved this at 2026-03-10 09:00 UTC, but it changed before it ran, so that " \
                        "approval lets nothing run. Asked."
    assert {f.label: f.value for f in again.facts}["Changed since you approved"] == changed
