"""Long-term memory against the real PostgreSQL + pgvector and the real sentence embedder."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memory.index import link
from memory.longterm import Kind, LongTermMemory, MemoryIn, MemoryNotFound, ef_search_for

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def ltm(db, embedder) -> LongTermMemory:
    return LongTermMemory(db, embedder, clock=lambda: T0)


def test_changed_fact_becomes_a_new_version_and_recall_sees_only_the_current_one(ltm: LongTermMemory) -> None:
    """A changed fact for the same subject+ref supersedes the old one: history kept, search current only."""
    old = ltm.remember("Ana Kowalski's billing email is ana@oldmail.example.", kind="fact",
                       subject="customer:ana", ref="crm-17", provenance={"source": "crm"})
    new = ltm.remember("Ana Kowalski's billing email is ana@kowalski.example.", kind="fact",
                       subject="customer:ana", ref="crm-17", provenance={"source": "chat", "run_id": 4})

    assert new.outcome == "versioned"
    assert (new.version, new.supersedes, new.current) == (2, old.id, True)
    history = ltm.versions(new.id)
    assert [(v.id, v.version, v.current) for v in history] == [(old.id, 1, False), (new.id, 2, True)]
    assert ltm.versions(old.id) == history  # from either end

    found = ltm.recall("What is Ana's billing email?", subject="customer:ana")
    assert [r.id for r in found] == [new.id]
    with_history = ltm.recall("What is Ana's billing email?", subject="customer:ana", include_history=True)
    assert {r.id for r in with_history} == {old.id, new.id}

    # Restating the current text is not a change: no third version.
    again = ltm.remember("Ana Kowalski's billing email is ana@kowalski.example.", kind="fact",
                         subject="customer:ana", ref="crm-17")
    assert (again.outcome, again.id) == ("merged", new.id)


def test_near_duplicates_are_merged_keeping_every_ref_and_source(ltm: LongTermMemory) -> None:
    """Near-duplicates of the same subject and kind become one memory that answers for all their refs."""
    first = ltm.remember("Ana asked us to send invoices as PDF attachments.", kind="customer_interaction",
                         subject="customer:ana", ref="zendesk-1", provenance={"source": "zendesk"})
    second = ltm.remember("Ana asked us to send the invoices as PDF attachments", kind="customer_interaction",
                          subject="customer:ana", ref="gmail-9", provenance={"source": "gmail"})
    other_subject = ltm.remember("Ana asked us to send invoices as PDF attachments.",
                                 kind="customer_interaction", subject="customer:bob", ref="zendesk-2")

    assert second.outcome == "merged" and second.id == first.id
    assert second.refs == ["zendesk-1", "gmail-9"]
    assert second.provenance["source"] == "zendesk"
    assert {"ref": "gmail-9", "source": "gmail"} in second.provenance["merged"]
    assert other_subject.outcome == "inserted"  # same words, other customer: not a duplicate
    assert ltm.stats().current == 2

    # A bulk batch merges within itself too, and the result still answers for every ref.
    records = ltm.remember_many([
        MemoryIn(text="Bob prefers calls on Tuesday mornings.", kind=Kind.FACT, subject="customer:bob",
                 ref=f"note-{i}") for i in range(3)
    ])
    assert len({r.id for r in records}) == 1
    assert records[-1].refs == ["note-0", "note-1", "note-2"]


def test_memories_that_differ_in_numbers_or_word_order_are_not_merged(ltm: LongTermMemory) -> None:
    """Embeddings barely see numbers or word order: "paid 120" / "paid 210" and "email over phone" /
    "phone over email" are close in cosine but stay two memories each."""
    a = ltm.remember("Nordwind paid invoice INV-120 in full.", kind="outcome", subject="customer:nordwind")
    b = ltm.remember("Nordwind paid invoice INV-210 in full.", kind="outcome", subject="customer:nordwind")
    c = ltm.remember("Ana prefers email over phone.", kind="fact", subject="customer:ana")
    d = ltm.remember("Ana prefers phone over email.", kind="fact", subject="customer:ana")
    assert (b.outcome, d.outcome) == ("inserted", "inserted")
    assert len({a.id, b.id, c.id, d.id}) == 4


DISTRACTORS = [
    "Invoice for the spring workshop is overdue; we sent Nordwind GmbH a friendly payment reminder.",
    "Invoice status check: Baltic Foods has not paid yet, second reminder scheduled for Friday.",
    "Overdue invoice from Kestrel Ltd, their accountant promised payment by the end of the month.",
    "Invoice status: Orbit Media disputes the hours billed and wants a call before paying.",
    "We reissued the invoice to Lumen Studio with the corrected VAT number; payment status pending.",
    "Invoice reminder sent to Harbour Café, the status is unpaid after thirty days.",
    "Status of the invoice for Pine & Co: partially paid, balance due next week.",
    "The invoice for the autumn campaign is unpaid; Quartz Labs asked for a payment plan.",
    "Sent a late-payment notice about the overdue invoice to Velvet Events.",
    "Invoice status update: Atlas Travel paid the deposit, the rest of the invoice remains open.",
    "Discussed the newsletter schedule with Marta, she wants two issues a month.",
    "Booked the venue for the summer meetup, deposit paid by card.",
]
TARGET = "Settled INV-7731 by bank transfer on the 3rd, thanks to Zofia Nowak."


def test_hybrid_search_finds_an_invoice_number_and_a_name_that_vector_search_ranks_low(
    ltm: LongTermMemory,
) -> None:
    """Keyword match fused with vector similarity finds an exact invoice number and a customer name
    even where the embedding ranks that memory low (both rankings shown)."""

    records = ltm.remember_many(
        [MemoryIn(text=t, kind=Kind.CUSTOMER_INTERACTION, subject="billing", ref=f"d{i}")
         for i, t in enumerate(DISTRACTORS)]
        + [MemoryIn(text=TARGET, kind=Kind.CUSTOMER_INTERACTION, subject="billing", ref="target")]
    )
    target_id = records[-1].id

    for question in ("what is the status of invoice INV-7731?", "What is the invoice status for Nowak?"):
        vector_only = [mid for mid, _ in ltm.vector_search(question, k=len(records), exact=True)]
        hybrid = [r.id for r in ltm.recall(question, k=5)]
        vector_rank = vector_only.index(target_id) + 1
        hybrid_rank = hybrid.index(target_id) + 1 if target_id in hybrid else None
        print(f"{question!r}: vector-only rank {vector_rank} of {len(records)}, hybrid rank {hybrid_rank}")
        assert vector_rank > 3, "the scenario needs an embedding that misses the target"
        assert hybrid_rank == 1

    # An identifier on its own is found first: only the keyword leg knows it at all.
    assert ltm.recall("INV-7731", k=3)[0].ref == "target"


def test_recall_filters_by_subject_and_kind_and_keeps_within_the_token_budget(ltm: LongTermMemory) -> None:
    """Filters narrow both legs; a token budget cuts the list best first."""
    ltm.remember("Ana prefers email.", kind="fact", subject="customer:ana")
    ltm.remember("Ana's last order was 40 mugs.", kind="outcome", subject="customer:ana")
    ltm.remember("Bob prefers email too.", kind="fact", subject="customer:bob")

    assert {r.subject for r in ltm.recall("who prefers email", subject="customer:ana")} == {"customer:ana"}
    assert {r.kind for r in ltm.recall("Ana", kind="outcome")} == {Kind.OUTCOME}
    assert len(ltm.recall("who prefers email", k=10, token_budget=6)) == 1
    used = ltm.recall("Ana email", subject="customer:ana", k=1)[0]
    assert ltm.get(used.id).last_used_at == T0


def test_forget_leaves_a_tombstone_of_every_version(ltm: LongTermMemory) -> None:
    """Forget redacts the text and drops the embedding of every version, keeps the rows, and reports digests."""
    v1 = ltm.remember("Carla's home address is 12 Elm Street.", kind="fact", subject="customer:carla", ref="a")
    v2 = ltm.remember("Carla's home address is 7 Oak Avenue.", kind="fact", subject="customer:carla", ref="a")

    forgotten = ltm.forget(v2.id, by="console:operator")

    assert {f.id for f in forgotten} == {v1.id, v2.id}
    assert all(len(f.text_sha256) == 64 and f.forgotten_by == "console:operator" for f in forgotten)
    for v in ltm.versions(v2.id):
        assert v.text == "[forgotten]" and v.forgotten_at == T0
    assert ltm.recall("Carla address", include_history=True) == []
    assert ltm.stats().tombstoned == 2
    assert ltm.forget(v2.id, by="console:operator") == []  # twice is a no-op
    with pytest.raises(MemoryNotFound):
        ltm.forget(999_999, by="console:operator")
    with ltm.pool.connection() as conn:
        row = conn.execute("SELECT embedding FROM memories WHERE id = %s", (v1.id,)).fetchone()
    assert row["embedding"] is None


def test_reclamation_never_removes_a_referenced_memory_and_reports_what_it_removed(
    ltm: LongTermMemory, db
) -> None:
    """Past retention, only memories nothing cites or links to go; stats previews exactly those."""
    old = T0 - timedelta(days=800)
    cited = ltm.remember("Ana complained about late delivery.", kind="customer_interaction",
                         subject="customer:ana", at=old)
    linked = ltm.remember("Bob asked for a discount on 200 units.", kind="customer_interaction",
                          subject="customer:bob", at=old)
    loose = ltm.remember("Carla said thanks for the quick reply.", kind="customer_interaction",
                         subject="customer:carla", at=old, ref="zd-5")
    fresh = ltm.remember("Dan asked about opening hours.", kind="customer_interaction", subject="customer:dan")
    forever = ltm.remember("We never discount below cost.", kind="policy", subject="pricing", at=old)
    assert ltm.cite([cited.id], run_id=12, step="draft_reply", step_key="run:12:draft_reply") == 1
    # A retried step does not count twice.
    assert ltm.cite([cited.id], run_id=12, step="draft_reply", step_key="run:12:draft_reply") == 0
    link(db, ("approval", "ap_1"), ("memory", linked.id), "quoted")

    preview = ltm.stats(now=T0).next_reclamation
    removed = ltm.reclaim(T0)

    assert [r.id for r in preview] == [r.id for r in removed] == [loose.id]
    assert removed[0].ref == "zd-5"
    assert ltm.get(cited.id).refcount == 1
    for kept in (cited, linked, fresh, forever):
        assert ltm.get(kept.id).id == kept.id
    with pytest.raises(MemoryNotFound):
        ltm.get(loose.id)
    assert ltm.reclaim(T0) == []


def test_summarise_compacts_old_interactions_into_one_linked_summary(ltm: LongTermMemory, db) -> None:
    """Old interactions of a subject become one summary linked to its sources; the sources stay, and
    a summarised source is neither summarised again nor kept alive by the summary's link."""
    old = T0 - timedelta(days=400)
    sources = [
        ltm.remember(text, kind="customer_interaction", subject="customer:ana", at=old + timedelta(days=i))
        for i, text in enumerate(["Ana ordered 40 mugs.", "Ana asked for gift wrapping.", "Ana paid by card."])
    ]
    seen: list[list[str]] = []

    def summariser(texts: list[str]) -> str:
        seen.append(texts)
        return "Ana: ordered 40 gift-wrapped mugs, paid by card."

    summary = ltm.summarise("customer:ana", older_than=T0 - timedelta(days=30), summariser=summariser)

    assert summary is not None and summary.kind == Kind.SUMMARY
    assert seen == [[s.text for s in sources]]
    assert summary.provenance["summarises"] == [s.id for s in sources]
    with db.connection() as conn:
        linked = conn.execute("SELECT to_id FROM memory_links WHERE from_type = 'memory' AND from_id = %s "
                              "AND relation = 'summarises' ORDER BY to_id", (str(summary.id),)).fetchall()
    assert [int(r["to_id"]) for r in linked] == [s.id for s in sources]
    assert all(ltm.get(s.id).current for s in sources)
    assert ltm.summarise("customer:ana", older_than=T0, summariser=summariser) is None
    # Retention of the sources (365 days) has ended: the summary's links do not keep them.
    assert {r.id for r in ltm.reclaim(T0)} == {s.id for s in sources}
    assert ltm.get(summary.id).provenance["summarises"] == [s.id for s in sources]


def test_ef_search_grows_with_the_index_as_the_benchmark_measured() -> None:
    """Proves recall keeps its measured quality as memory grows: the HNSW candidate list widens with the index."""
    assert [ef_search_for(n) for n in (-1, 0, 150_000, 200_000, 300_000, 1_000_000, 5_000_000)] == [
        100, 100, 100, 100, 200, 325, 400]


def test_recall_sets_the_candidate_list_for_the_index_it_searches(ltm: LongTermMemory, db) -> None:
    """Proves the size check reads the live index (small here: 100) and that a configured value wins."""
    ltm.remember("Ana prefers email.", kind="fact", subject="customer:ana")
    with db.connection() as conn, conn.cursor() as cur:
        conn.execute("ANALYZE memories")
        assert ltm._ef_search(cur) == 100
    fixed = LongTermMemory(db, ltm.embedder, ef_search=250)
    with db.connection() as conn, conn.cursor() as cur:
        assert fixed._ef_search(cur) == 250
