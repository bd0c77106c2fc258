"""The metadata index: "why did we email Ana on the 3rd?" answered from links alone."""
from __future__ import annotations

from memory.index import chain, link, step_node
from memory.longterm import LongTermMemory


def test_why_returns_the_action_its_run_intent_approval_cited_memories_and_audit_events(db, embedder) -> None:
    """From a connector key, chain() walks up to the step, run and intent and gathers the approval,
    the memories the step cited and the audit events of each, but not the run's other steps."""
    ltm = LongTermMemory(db, embedder)
    prefers = ltm.remember("Ana prefers email over phone.", kind="fact", subject="customer:ana", ref="crm-1")
    promise = ltm.remember("We promised Ana a 10% discount on her next order.", kind="decision",
                           subject="customer:ana")
    unrelated = ltm.remember("Bob's invoices go to accounts@bob.example.", kind="fact", subject="customer:bob")

    send = step_node("run:12:send_emails")
    draft = step_node("run:12:draft_email")
    key = ("connector_action", "email:run:12:send_emails")
    link(db, key, send, "part_of")
    link(db, draft, ("run", 12), "part_of")
    link(db, ("run", 12), ("intent", 7), "part_of")
    link(db, ("approval", "ap_1"), send, "approves")
    link(db, ("audit_event", 101), ("run", 12), "records")
    link(db, ("audit_event", 102), ("approval", "ap_1"), "records")
    link(db, ("audit_event", 103), key, "records")
    # Also links the step to run 12.
    ltm.cite([prefers.id, promise.id], run_id=12, step="send_emails", step_key="run:12:send_emails")
    ltm.cite([unrelated.id], run_id=12, step="draft_email", step_key="run:12:draft_email")

    why = chain(db, *key)

    assert [(n.type, n.id) for n in why.lineage] == [send, ("run", "12"), ("intent", "7")]
    assert [n.id for n in why.of_type("approval")] == ["ap_1"]
    assert {n.id for n in why.of_type("memory")} == {str(prefers.id), str(promise.id)}
    assert {n.id for n in why.of_type("audit_event")} == {"101", "102", "103"}
    assert why.first("memory").detail["subject"] == "customer:ana"
    assert draft not in {(n.type, n.id) for n in why.nodes}  # a sibling step is not a cause
    assert ("approval", "ap_1", "step", send[1], "approves") in {
        (lk.from_type, lk.from_id, lk.to_type, lk.to_id, lk.relation) for lk in why.links
    }


def test_linking_is_idempotent_so_a_retried_step_can_link_again(db) -> None:
    """The same link written twice is one row."""
    link(db, ("run", 1), ("intent", 1), "part_of")
    link(db, ("run", 1), ("intent", 1), "part_of")
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM memory_links").fetchone()["n"] == 1
