"""Contacts in chat after an import (no demo seed): `contacts`, `contact Ana`, two Anas, and a request in words
that names an imported customer."""
from pathlib import Path

from orchestrator import Decision, contacts
from tests.orchestrator.helpers import OPERATOR, operations, pending_approval, run_state

PEOPLE = ("email,Full name,Tier,MRR,status,Company\n"
          "ana@example.com,Ana Souza,monthly,12,active,Souza Studio\n"
          "ben@example.com,Ben Okafor,annual,8.33,active,\n"
          "ines@example.com,Inês Duarte,,,lapsed,\n")


def imported(services, tmp_path: Path, text: str = PEOPLE) -> None:
    path = tmp_path / "people.csv"
    path.write_text(text)
    summary = contacts.import_csv(services, path, actor=OPERATOR.identity)
    assert summary.skipped == []


def test_contacts_says_how_many_and_lists_the_latest(services, tmp_path):
    ops = operations(services)
    assert ops.handle_text(OPERATOR, "contacts").title == "No contacts yet."
    imported(services, tmp_path)
    reply = ops.handle_text(OPERATOR, "contacts")
    assert reply.title == "3 contacts: 2 active, 1 lapsed."
    assert [f.label for f in reply.sections[0].facts] == ["Ana Souza", "Ben Okafor", "Inês Duarte"]


def test_contact_ana_shows_her_card(services, tmp_path):
    imported(services, tmp_path)
    reply = operations(services).handle_text(OPERATOR, "contact Ana")
    [ana] = services.crm.find("ana@example.com")
    assert reply.title == f"Ana Souza · {ana.id}"
    facts = {f.label: f.value for f in reply.sections[0].facts}
    assert facts["Email"] == "ana@example.com"
    assert facts["Plan"] == "monthly, $12.00/month"
    assert facts["Company"] == "Souza Studio"


def test_contact_ana_with_two_anas_says_which_match_and_shows_neither(services, tmp_path):
    imported(services, tmp_path, PEOPLE + "ana.lima@example.com,Ana Lima,monthly,12,active,\n")
    ops = operations(services)
    reply = ops.handle_text(OPERATOR, "contact Ana")
    assert reply.title.startswith("Two contacts match “Ana”: Ana Lima (ana.lima@example.com, c-")
    assert "Ana Souza (ana@example.com, c-" in reply.title
    assert reply.sections == []
    assert ops.handle_text(OPERATOR, "contact ana@example.com").title.startswith("Ana Souza · c-")


def test_contact_nobody_says_so(services, tmp_path):
    imported(services, tmp_path)
    assert operations(services).handle_text(OPERATOR, "contact Zoe").title == "No contact matches “Zoe”."


def outbox(db, kind: str) -> list[dict]:
    with db.connection() as conn:
        return [r["message"] for r in conn.execute(
            "SELECT message FROM outbox WHERE kind = %s ORDER BY id", (kind,)).fetchall()]


def test_email_ana_souza_finds_the_imported_customer(services, db, work, settings, tmp_path):
    """The issue's first try, in a fresh workspace with her imported from a CSV and no demo seed: before, it
    answered "I found no single customer matching Ana Souza"; now the email is drafted to her address and sent
    once approved."""
    imported(services, tmp_path)
    ops = operations(services)
    ops.handle_text(OPERATOR, "email Ana Souza about her annual plan")
    work()
    assert run_state(db, 1) == "awaiting_approval"
    [ask] = outbox(db, "approval_request")
    assert "ana@example.com" in str(ask)
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    [eml] = list(settings.outbox_email_dir.glob("*.eml"))
    assert "To: ana@example.com" in eml.read_text()


def test_two_customers_matching_a_request_are_named_and_the_reply_picks_one(services, db, work, tmp_path):
    """Two Anas: the outreach request stops before any draft and names both; replying with one's address carries
    on with her."""
    imported(services, tmp_path, PEOPLE + "ana.lima@example.com,Ana Lima,monthly,12,active,\n")
    ops = operations(services)
    ops.handle_text(OPERATOR, "email Ana about her annual plan")
    work()
    assert run_state(db, 1) == "cancelled"
    [question] = outbox(db, "notice")
    assert "Two customers match “Ana”: Ana Lima (ana.lima@example.com" in question["text"]
    assert "Ana Souza (ana@example.com" in question["text"]
    ops.handle_text(OPERATOR, "ana.lima@example.com")
    work()
    assert run_state(db, 2) == "awaiting_approval"
    [ask] = outbox(db, "approval_request")
    assert "ana.lima@example.com" in str(ask) and "ana@example.com" not in str(ask)
