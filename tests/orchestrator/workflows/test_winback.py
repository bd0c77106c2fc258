"""The win-back approval says it leads to charges, and binds them: what is charged is what the operator approved."""
from __future__ import annotations

import pytest

from orchestrator import Decision
from orchestrator.words.campaign import listed, renewals_changed
from tests.orchestrator.helpers import OPERATOR, count, pending_approval, run_state, seed, to_approval

# The demo's five lapsed subscribers at 30% off: four $12.00 plans and Chloé's $24.00.
CHARGES = {"c-ana": 840, "c-ben": 840, "c-chloe": 1680, "c-dev": 840, "c-eve": 840}


def asks(db) -> list[dict]:
    with db.connection() as conn:
        return [r["message"] for r in conn.execute(
            "SELECT message FROM outbox WHERE kind = 'approval_request' ORDER BY id").fetchall()]


def facts(message: dict) -> dict[str, str]:
    return {f["label"]: f["value"] for s in message["sections"] for f in s["facts"]}


def charged(db) -> dict[str, int]:
    with db.connection() as conn:
        rows = conn.execute("SELECT customer, amount_cents FROM payments_ledger"
                            " WHERE kind = 'charge' AND status = 'succeeded'").fetchall()
    return {r["customer"]: r["amount_cents"] for r in rows}


def reprice(services, contact_id: str, monthly_cents: int) -> None:
    services.crm.upsert([services.crm.get(contact_id).model_copy(update={"monthly_cents": monthly_cents})])


def test_the_campaign_approval_names_the_charges_that_follow_it(services, db, work):
    """Proves the ask says plainly what approving leads to: the emails, then charging every lapsed subscriber,
    how many, how much in total and whom. Before, it asked only about the emails."""
    seed(services, declining=None)
    to_approval(services, work)
    [ask] = asks(db)
    assert ask["title"].startswith("Approval needed for run #1: Email 5 lapsed subscribers the offer")
    assert ask["title"].endswith("then charge them $50.40 in total")
    assert facts(ask)["Then charges"] == ("5 renewals, $50.40 in total: Ana Souza $8.40, Ben Okafor $8.40, "
                                          "Chloé Martin $16.80, Dev Patel $8.40, Eve Lindqvist $8.40")
    assert "Ana Souza <ana@example.com>" in facts(ask)["Recipients"]
    assert "pauses that subscriber's access" in ask["text"]


def test_a_price_changed_while_the_emails_go_out_makes_the_charge_step_ask_again(services, db, work):
    """Proves the charges are bound to the approval: the campaign is approved for $8.40 from Ana; while its emails
    go out her price changes. The charge step charges nobody and asks, naming the change; approved, it charges
    the new amount once. Before, it charged whatever the CRM said, under an approval that never named a charge."""
    seed(services, declining=None)
    ops, approval_id = to_approval(services, work)
    ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    send = services.email.execute

    def send_then_reprice(*, action, key):
        sent = send(action=action, key=key)
        reprice(services, "c-ana", 1500)
        return sent

    services.email.execute = send_then_reprice
    work()
    assert run_state(db, 1) == "awaiting_approval"
    assert count(db, "payments_ledger") == 0
    assert len(list(services.settings.outbox_email_dir.glob("*.eml"))) == 5
    again = asks(db)[-1]
    assert "Charge 5 win-back renewals, $52.50 in all, not what you approved" in again["title"]
    assert facts(again)["Changed since you approved"] == "Ana Souza: $8.40 → $10.50"
    assert "said it would then charge 5 subscribers $50.40" in again["text"]
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert charged(db) == {**CHARGES, "c-ana": 1050}
    assert count(db, "payments_ledger", "kind = 'charge'") == 5


def test_a_subscriber_who_renewed_after_approval_is_neither_emailed_nor_charged_without_a_new_approval(
        services, db, work):
    """Ben renews on his own between the approval and the send: the campaign it approved is no longer the one
    that would run, so nothing goes out; the new ask names four subscribers and what changed."""
    seed(services, declining=None)
    ops, approval_id = to_approval(services, work)
    ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    services.crm.upsert([services.crm.get("c-ben").model_copy(update={"status": "active"})])
    work()
    assert run_state(db, 1) == "awaiting_approval"
    assert not list(services.settings.outbox_email_dir.glob("*.eml"))
    again = asks(db)[-1]
    assert again["title"].startswith("Approval needed again for run #1: Email 4 lapsed subscribers")
    assert "Ben Okafor" in facts(again)["Changed since you approved"]
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert charged(db) == {k: v for k, v in CHARGES.items() if k != "c-ben"}


def test_a_subscriber_lapsed_after_approval_is_not_charged(services, db, work):
    """The operator approved these people: one who lapses while the campaign runs is left for the next one."""
    seed(services, declining=None)
    ops, approval_id = to_approval(services, work)
    ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    services.crm.upsert([services.crm.get("c-fay").model_copy(update={"status": "lapsed"})])
    work()
    assert run_state(db, 1) == "succeeded"
    assert charged(db) == CHARGES


def test_an_unchanged_campaign_approved_once_runs_once_with_no_second_ask(services, db, work):
    seed(services, declining=None)
    ops, approval_id = to_approval(services, work)
    ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert len(asks(db)) == 1 and count(db, "approvals") == 1
    assert len(list(services.settings.outbox_email_dir.glob("*.eml"))) == 5
    assert charged(db) == CHARGES


@pytest.mark.parametrize(("items", "limit", "sep", "line"), [
    ([], 8, ", ", "nobody"),
    (["Ana"], 8, ", ", "Ana"),
    (["Ana", "Ben"], 2, ", ", "Ana, Ben"),
    (["Ana", "Ben", "Chloé"], 2, ", ", "Ana, Ben, and 1 more"),
    (["a: $1 → $2", "b: left out"], 1, "\n", "a: $1 → $2\nand 1 more"),
])
def test_a_list_is_bounded_and_says_how_many_more(items, limit, sep, line) -> None:
    assert listed(items, limit, sep=sep) == line


def test_changed_renewals_are_named_subscriber_by_subscriber() -> None:
    ask = renewals_changed(approved={"c-ana": 840, "c-ben": 840, "c-dev": 840}, now={"c-ana": 1050, "c-dev": 840},
                           names={"c-ana": "Ana Souza", "c-ben": "Ben Okafor"})
    assert ask.what == "Charge 2 win-back renewals, $18.90 in all, not what you approved"
    changed = {f.label: f.value for f in ask.facts}["Changed since you approved"]
    assert changed == "Ana Souza: $8.40 → $10.50\nBen Okafor: left out, no longer lapsed"
