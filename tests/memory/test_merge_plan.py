"""The merge planner and its helpers, pure: insert, merge into a near-duplicate, or new version, from plain data."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from memory.longterm.merge_plan import (
    Candidates,
    PendingRow,
    is_near_duplicate,
    links_of,
    merge_into,
    new_row,
    numbers,
    plan_batch,
    provenance_entry,
    same_text,
    same_wording,
)
from memory.longterm.records import DEFAULT_RETENTION, Kind, MemoryIn, Provenance

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
WALL = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)
THRESHOLD = 0.95
YEAR = timedelta(days=365)

# Unit vectors: cos(E, NEAR) ~ 0.995 (a restatement), cos(E, FAR) = 0.
E = np.array([1.0, 0.0])
NEAR = np.array([1.0, 0.1]) / np.linalg.norm([1.0, 0.1])
FAR = np.array([0.0, 1.0])

NEW_IDS = [101, 102, 103]


def item(text: str, *, subject: str = "customer:ana", kind: Kind = Kind.FACT, ref: str | None = None,
         **provenance: Any) -> MemoryIn:
    return MemoryIn(text=text, kind=kind, subject=subject, ref=ref, provenance=Provenance(**provenance))


def row(id_: int, text: str, *, similarity: float | None, subject: str = "customer:ana", kind: Kind = Kind.FACT,
        ref: str | None = None, version: int = 1, current: bool = True, forgotten: bool = False,
        provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """A candidate row as FIND_BY_REF / NEAREST_SAME_SUBJECT return it: the item index, similarity, columns."""
    return {
        "i": 0, "similarity": similarity, "id": id_, "ref": ref, "text": text, "kind": kind.value,
        "subject": subject, "provenance": provenance if provenance is not None else {"refs": [ref] if ref else []},
        "created_at": T0, "last_used_at": None, "refcount": 0, "version": version, "supersedes": None,
        "current": current, "forgotten_at": T0 if forgotten else None, "forgotten_by": None, "retention_until": None,
    }


def plan(items: list[MemoryIn], vectors: list[np.ndarray], *, by_ref: dict[int, dict[str, Any]] | None = None,
         nearest: dict[int, dict[str, Any]] | None = None, now: datetime | None = T0):
    return plan_batch(items, np.array(vectors), Candidates(by_ref=by_ref or {}, nearest=nearest or {},
                                                           new_ids=NEW_IDS[:len(items)]),
                      merge_threshold=THRESHOLD, retention=DEFAULT_RETENTION, now=now, wall_now=WALL)


# --- what the planner decides ------------------------------------------------------------------------

PAID = "Nordwind paid invoice INV-120 in full."
EMAIL = "Ana's billing email is ana@oldmail.example."

PLANS = [
    pytest.param([item(PAID)], [E], {}, {}, [(101, "inserted")], id="nothing_known_is_inserted"),
    pytest.param([item(EMAIL, ref="crm-17")], [E], {0: row(7, "ana's  billing EMAIL is ana@oldmail.example.",
                                                           similarity=0.9, ref="crm-17")}, {},
                 [(7, "merged")], id="same_ref_restated_up_to_case_and_spaces_is_merged"),
    pytest.param([item("Ana's billing email is ana@kowalski.example.", ref="crm-17")], [E],
                 {0: row(7, EMAIL, similarity=0.99, ref="crm-17")}, {},
                 [(101, "versioned")], id="same_ref_changed_text_is_a_new_version"),
    pytest.param([item("Ana's billing email is ana@kowalski.example.", ref="crm-17")], [E],
                 {0: row(7, EMAIL, similarity=0.99, ref="crm-17", forgotten=True)}, {},
                 [(101, "inserted")], id="same_ref_of_a_forgotten_memory_is_inserted"),
    pytest.param([item("Nordwind paid invoice INV-120 in full")], [E], {},
                 {0: row(7, PAID, similarity=0.97)}, [(7, "merged")], id="near_duplicate_is_merged"),
    pytest.param([item("Nordwind paid invoice INV-210 in full.")], [E], {},
                 {0: row(7, PAID, similarity=0.99)}, [(101, "inserted")],
                 id="near_duplicate_with_other_numbers_is_new"),
    pytest.param([item("Ana prefers phone over email.")], [E], {},
                 {0: row(7, "Ana prefers email over phone.", similarity=0.98)}, [(101, "inserted")],
                 id="near_duplicate_with_words_swapped_is_new"),
    pytest.param([item("Nordwind paid invoice INV-120 in full")], [E], {},
                 {0: row(7, PAID, similarity=0.94)}, [(101, "inserted")], id="similarity_below_threshold_is_new"),
    pytest.param([item(PAID)], [E], {}, {0: row(7, PAID, similarity=None)}, [(101, "inserted")],
                 id="nearest_without_embedding_is_ignored"),
    pytest.param([item(PAID)], [E], {}, {0: row(7, PAID, similarity=0.99, current=False)}, [(101, "inserted")],
                 id="superseded_nearest_is_not_merged_into"),
    pytest.param([item(PAID), item(PAID + " ")], [E, NEAR], {}, {}, [(101, "inserted"), (101, "merged")],
                 id="batch_merges_into_its_own_earlier_item"),
    pytest.param([item(PAID), item(PAID)], [E, FAR], {}, {}, [(101, "inserted"), (102, "inserted")],
                 id="batch_items_far_apart_in_cosine_stay_two"),
    pytest.param([item(PAID), item(PAID, subject="customer:bob")], [E, E], {}, {},
                 [(101, "inserted"), (102, "inserted")], id="batch_items_of_other_subjects_stay_two"),
    pytest.param([item(PAID), item(PAID, kind=Kind.OUTCOME)], [E, E], {}, {},
                 [(101, "inserted"), (102, "inserted")], id="batch_items_of_other_kinds_stay_two"),
    pytest.param([item(EMAIL, ref="crm-17"), item("Ana's billing email is ana@kowalski.example.", ref="crm-17")],
                 [E, FAR], {}, {}, [(101, "inserted"), (102, "versioned")],
                 id="batch_supersedes_its_own_earlier_item_of_the_same_ref"),
    pytest.param([item(EMAIL, ref="crm-17"), item(EMAIL, ref="crm-17")], [E, E], {}, {},
                 [(101, "inserted"), (101, "merged")], id="batch_repeating_a_ref_unchanged_merges"),
]


@pytest.mark.parametrize(("items", "vectors", "by_ref", "nearest", "outcomes"), PLANS)
def test_planner_decides(items, vectors, by_ref, nearest, outcomes) -> None:
    assert plan(items, vectors, by_ref=by_ref, nearest=nearest).outcomes == outcomes


def test_a_new_version_supersedes_the_old_row_and_keeps_its_refs() -> None:
    old = row(7, EMAIL, similarity=0.99, ref="crm-17", version=3, provenance={"refs": ["crm-17", "gmail-2"]})
    result = plan([item("Ana's billing email is ana@kowalski.example.", ref="crm-17", source="chat")], [E],
                  by_ref={0: old})
    superseded, successor = result.rows
    assert (superseded.new, superseded.dirty, superseded.row["current"]) == (False, True, False)
    assert (successor.new, successor.row["version"], successor.row["supersedes"]) == (True, 4, 7)
    assert successor.row["provenance"] == {"source": "chat", "refs": ["crm-17", "gmail-2"]}
    assert old["current"] is True, "the planner changes copies, not the candidate rows it was given"


def test_a_merge_marks_the_existing_row_for_update_and_inserts_nothing() -> None:
    result = plan([item("Nordwind paid invoice INV-120 in full", ref="gmail-9", source="gmail")], [E],
                  nearest={0: row(7, PAID, similarity=0.97, ref="zendesk-1")})
    [target] = result.rows
    assert (target.new, target.dirty) == (False, True)
    assert target.row["provenance"]["refs"] == ["zendesk-1", "gmail-9"]
    assert target.row["provenance"]["merged"] == [{"source": "gmail", "ref": "gmail-9"}]
    assert "similarity" not in target.row and "i" not in target.row


def test_an_untouched_candidate_is_not_written() -> None:
    result = plan([item("Something else entirely, 42.")], [FAR], nearest={0: row(7, PAID, similarity=0.1)})
    assert [(p.row["id"], p.new, p.dirty) for p in result.rows] == [(7, False, False), (101, True, True)]


# --- the helpers ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("Nordwind paid in full.", set(), id="no_numbers"),
    pytest.param("paid INV-2041 and INV-2042", {"2041", "2042"}, id="invoice_numbers_without_prefix"),
    pytest.param("12.50 at 9:30 on 03/04", {"12.50", "9:30", "03/04"}, id="separators_stay_inside_a_number"),
    pytest.param("1,200 units, 1,200 again", {"1,200"}, id="repeats_count_once"),
    pytest.param("ref 2025-03-01", {"2025-03-01"}, id="a_date_is_one_number"),
])
def test_numbers(text: str, expected: set[str]) -> None:
    assert numbers(text) == expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    pytest.param("Ana asked for PDF invoices.", "ana asked for pdf invoices", True, id="case_and_punctuation_ignored"),
    pytest.param("Ana asked us to send invoices as PDF attachments.",
                 "Ana asked us to send the invoices as PDF attachments", True, id="one_word_added"),
    pytest.param("Ana prefers email over phone.", "Ana prefers phone over email.", False, id="words_swapped"),
    pytest.param("Ana prefers email.", "Bob dislikes calls on Mondays.", False, id="different_sentences"),
    pytest.param("...", "!!", True, id="texts_without_words_are_alike"),
])
def test_same_wording(a: str, b: str, expected: bool) -> None:
    assert same_wording(a, b) is expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    pytest.param("Ana pays by card.", "ana  pays by\ncard.", True, id="spacing_and_case"),
    pytest.param("Ana pays by card.", "Ana pays by card", False, id="punctuation_counts"),
    pytest.param("Ana pays by card.", "Ana pays by transfer.", False, id="changed_word"),
])
def test_same_text(a: str, b: str, expected: bool) -> None:
    assert same_text(a, b) is expected


@pytest.mark.parametrize(("existing", "incoming", "similarity", "expected"), [
    pytest.param(PAID, "Nordwind paid invoice INV-120 in full", 0.97, True, id="restated"),
    pytest.param(PAID, "Nordwind paid invoice INV-120 in full", 0.95, True, id="at_threshold"),
    pytest.param(PAID, "Nordwind paid invoice INV-120 in full", 0.9499, False, id="just_below_threshold"),
    pytest.param(PAID, "Nordwind paid invoice INV-210 in full.", 0.99, False, id="other_number"),
    pytest.param("Ana prefers email over phone.", "Ana prefers phone over email.", 0.98, False, id="swapped_words"),
])
def test_is_near_duplicate(existing: str, incoming: str, similarity: float, expected: bool) -> None:
    assert is_near_duplicate(existing, incoming, similarity, THRESHOLD) is expected


@pytest.mark.parametrize(("given", "expected"), [
    pytest.param(item("x"), {}, id="bare_item"),
    pytest.param(item("x", ref="zd-1", source="zendesk", run_id=4), {"source": "zendesk", "run_id": 4, "ref": "zd-1"},
                 id="ref_and_provenance"),
    pytest.param(MemoryIn(text="x", kind=Kind.FACT, subject="s", at=T0), {"at": T0.isoformat()}, id="dated_item"),
])
def test_provenance_entry(given: MemoryIn, expected: dict[str, Any]) -> None:
    assert provenance_entry(given) == expected


def _pending(ref: str | None, provenance: dict[str, Any]) -> PendingRow:
    return PendingRow(row(7, PAID, similarity=None, ref=ref, provenance=provenance), None, new=False)


@pytest.mark.parametrize(("target", "incoming", "refs", "merged"), [
    pytest.param(_pending("zd-1", {"refs": ["zd-1"], "source": "zendesk"}), item(PAID, ref="gm-9", source="gmail"),
                 ["zd-1", "gm-9"], [{"source": "gmail", "ref": "gm-9"}], id="another_source_is_recorded"),
    pytest.param(_pending("zd-1", {"refs": ["zd-1"], "source": "zendesk"}), item(PAID, ref="zd-1", source="zendesk"),
                 ["zd-1"], None, id="the_same_note_restated_adds_nothing"),
    pytest.param(_pending("zd-1", {"refs": ["zd-1"], "merged": [{"source": "gmail", "ref": "gm-9"}]}),
                 item(PAID, ref="gm-9", source="gmail"), ["zd-1", "gm-9"], [{"source": "gmail", "ref": "gm-9"}],
                 id="importing_twice_does_not_grow_the_provenance"),
    pytest.param(_pending("zd-1", {}), item(PAID), ["zd-1"], [{}], id="refs_fall_back_to_the_row_ref"),
    pytest.param(_pending(None, {}), item(PAID, ref="gm-9"), ["gm-9"], [{"ref": "gm-9"}],
                 id="first_ref_of_a_refless_row"),
])
def test_merge_into(target: PendingRow, incoming: MemoryIn, refs: list[str], merged: list[Any] | None) -> None:
    merge_into(target, incoming)
    assert target.dirty
    assert target.row["provenance"]["refs"] == refs
    assert target.row["provenance"].get("merged") == merged


@pytest.mark.parametrize(("given", "now", "created_at", "retention_until"), [
    pytest.param(MemoryIn(text="x", kind=Kind.CUSTOMER_INTERACTION, subject="s", at=T0 - YEAR), T0, T0 - YEAR, T0,
                 id="dated_interaction_kept_a_year_from_its_date"),
    pytest.param(MemoryIn(text="x", kind=Kind.CUSTOMER_INTERACTION, subject="s"), T0, T0, T0 + YEAR,
                 id="undated_interaction_dated_by_the_clock"),
    pytest.param(MemoryIn(text="x", kind=Kind.OUTCOME, subject="s"), None, None, WALL + YEAR,
                 id="no_clock_the_database_dates_it_and_retention_counts_from_the_wall_clock"),
    pytest.param(MemoryIn(text="x", kind=Kind.FACT, subject="s"), T0, T0, None, id="facts_are_kept_until_forgotten"),
    pytest.param(MemoryIn(text="x", kind=Kind.FACT, subject="s", retention_until=T0 + timedelta(days=3)), T0, T0,
                 T0 + timedelta(days=3), id="explicit_retention_wins"),
])
def test_new_row_dates(given: MemoryIn, now: datetime | None, created_at: datetime | None,
                       retention_until: datetime | None) -> None:
    p = new_row(5, given, E, version=1, supersedes=None, refs=[], retention=DEFAULT_RETENTION, now=now, wall_now=WALL)
    assert (p.row["created_at"], p.row["retention_until"]) == (created_at, retention_until)
    assert (p.new, p.dirty, p.row["current"]) == (True, True, True)


@pytest.mark.parametrize(("ref", "old_refs", "refs"), [
    pytest.param(None, [], [], id="no_refs"),
    pytest.param("a", [], ["a"], id="own_ref"),
    pytest.param("a", ["a", "b"], ["a", "b"], id="own_ref_first_then_inherited"),
    pytest.param("a", ["b", "a", "c"], ["a", "b", "c"], id="own_ref_moves_to_the_front"),
    pytest.param(None, ["b"], ["b"], id="inherited_only"),
])
def test_new_row_refs(ref: str | None, old_refs: list[str], refs: list[str]) -> None:
    p = new_row(5, item("x", ref=ref), E, version=2, supersedes=4, refs=old_refs, retention=DEFAULT_RETENTION,
                now=T0, wall_now=WALL)
    assert p.row["provenance"]["refs"] == refs


@pytest.mark.parametrize(("supersedes", "provenance", "links"), [
    pytest.param(None, {"refs": []}, [], id="nothing_to_link"),
    pytest.param(4, {}, [(("memory", "5"), ("memory", "4"), "supersedes")], id="a_new_version"),
    pytest.param(None, {"run_id": 12, "intent_id": 3, "audit_event_id": 99, "source": "chat"}, [
        (("memory", "5"), ("run", "12"), "learned_in"),
        (("memory", "5"), ("intent", "3"), "learned_in"),
        (("memory", "5"), ("audit_event", "99"), "learned_in"),
    ], id="where_it_was_learned"),
])
def test_links_of(supersedes: int | None, provenance: dict[str, Any], links: list[Any]) -> None:
    p = PendingRow({"id": 5, "supersedes": supersedes, "provenance": provenance}, E, new=True)
    assert links_of([p]) == links
