"""The merge planner, pure: for a batch of writes, decide insert, merge into a near-duplicate, or new version."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from difflib import SequenceMatcher
from typing import Any

import numpy as np

from memory.index import Node
from memory.longterm.records import Kind, MemoryIn, WriteOutcome

_NUMBERS = re.compile(r"\d+(?:[.,:/-]\d+)*")
_WORDS = re.compile(r"\w+")
# Share of the words, in order, two texts must have in common to be one memory (difflib's ratio).
SAME_WORDING = 0.75
# Provenance ids that become "learned_in" links in the metadata index.
PROVENANCE_NODES = (("run_id", "run"), ("intent_id", "intent"), ("audit_event_id", "audit_event"))


def numbers(text: str) -> set[str]:
    """The numbers in a text, with their inner separators ("INV-2041", "12.50", "9:30")."""
    return set(_NUMBERS.findall(text))


def same_wording(a: str, b: str) -> bool:
    """Whether two texts have mostly the same words in the same order, case aside."""
    return SequenceMatcher(None, _WORDS.findall(a.casefold()), _WORDS.findall(b.casefold())).ratio() >= SAME_WORDING


def same_text(a: str, b: str) -> bool:
    """Whether two texts are equal up to whitespace and case: a restatement, not a change."""
    return _norm(a) == _norm(b)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def is_near_duplicate(existing: str, incoming: str, similarity: float, threshold: float) -> bool:
    """Whether `incoming` restates `existing`, close enough in cosine to be merged into it.

    Embeddings barely see numbers ("paid 120" vs "paid 210") or word order ("prefers email over
    phone" vs "phone over email": cosine 0.98), so a merge also needs the same numbers and mostly
    the same words in the same order: merging is for one note restated, not for a new fact.
    """
    return similarity >= threshold and numbers(existing) == numbers(incoming) and same_wording(existing, incoming)


def provenance_entry(item: MemoryIn) -> dict[str, Any]:
    """What a merged item adds to its target's `merged` provenance list."""
    entry = item.provenance.model_dump(exclude_none=True)
    if item.ref:
        entry["ref"] = item.ref
    if item.at:
        entry["at"] = item.at.isoformat()
    return entry


@dataclass(eq=False)
class PendingRow:
    """A row as this batch will leave it: existing (to update) or new (to insert)."""

    row: dict[str, Any]
    vector: np.ndarray | None
    new: bool
    # Whether the row must be written: always for a new row, once changed for an existing one.
    dirty: bool = field(init=False)

    def __post_init__(self) -> None:
        self.dirty = self.new

    @property
    def live(self) -> bool:
        return bool(self.row["current"]) and self.row["forgotten_at"] is None


@dataclass(frozen=True)
class Candidates:
    """What the database holds for one batch, by item index; similarities are cosine to the item's vector."""

    # The current memory answering for the item's (subject, ref), with "similarity".
    by_ref: Mapping[int, Mapping[str, Any]]
    # The nearest live memory of the item's subject and kind, with "similarity".
    nearest: Mapping[int, Mapping[str, Any]]
    # One id allocated per item, used if the item becomes a new row.
    new_ids: Sequence[int]


@dataclass(frozen=True)
class Plan:
    # Every row the batch touched or made, in the order first touched.
    rows: list[PendingRow]
    # Per item, in order: the memory id that now answers for it and what happened.
    outcomes: list[tuple[int, WriteOutcome]]


def new_row(
    id_: int,
    item: MemoryIn,
    vector: np.ndarray,
    *,
    version: int,
    supersedes: int | None,
    refs: list[str],
    retention: Mapping[Kind, timedelta | None],
    now: datetime | None,
    wall_now: datetime,
) -> PendingRow:
    """The row an item becomes; `now` (the injected clock) dates it, or the database's now() if None.

    `wall_now` dates only the retention of a row that neither `item.at` nor `now` dates: a
    retention measured in days does not mind this process's clock being a little off the database's.
    """
    prov: dict[str, Any] = item.provenance.model_dump(exclude_none=True)
    all_refs = [r for r in refs if r != item.ref] + ([item.ref] if item.ref else [])
    prov["refs"] = ([item.ref] if item.ref else []) + [r for r in all_refs if r != item.ref]
    created = item.at or now
    keep_for = retention.get(item.kind)
    retention_until = item.retention_until
    if retention_until is None and keep_for is not None:
        retention_until = (created or wall_now) + keep_for
    row = {
        "id": id_, "ref": item.ref, "text": item.text, "kind": item.kind.value, "subject": item.subject,
        "provenance": prov, "created_at": created, "version": version, "supersedes": supersedes,
        "current": True, "forgotten_at": None, "retention_until": retention_until,
    }
    return PendingRow(row, vector, new=True)


def merge_into(target: PendingRow, item: MemoryIn) -> None:
    """Make `target` answer for `item` too: its ref joins `refs`, its provenance joins `merged`."""
    prov = target.row["provenance"]
    refs = list(prov.get("refs") or ([target.row["ref"]] if target.row["ref"] else []))
    if item.ref and item.ref not in refs:
        refs.append(item.ref)
    prov["refs"] = refs
    # Idempotent: importing the same file twice must not grow the provenance each time.
    entry = provenance_entry(item)
    restated = item.ref == target.row["ref"] and all(
        prov.get(key) == value for key, value in entry.items() if key not in ("ref", "at"))
    if not restated and entry not in prov.get("merged", []):
        prov.setdefault("merged", []).append(entry)
    target.dirty = True


def plan_batch(
    items: Sequence[MemoryIn],
    vectors: np.ndarray,
    candidates: Candidates,
    *,
    merge_threshold: float,
    retention: Mapping[Kind, timedelta | None],
    now: datetime | None,
    wall_now: datetime,
) -> Plan:
    """Decide, item by item and in order, insert / merge / new version (see `new_row` for the dates).

    An item sees the rows earlier items of the same batch made or changed, so a batch may merge
    into or supersede itself. Changes only the rows it returns (copies of the candidates).
    """
    rows: dict[int, PendingRow] = {}  # by memory id, everything this batch has touched or made
    outcomes: list[tuple[int, WriteOutcome]] = []

    def existing(row: Mapping[str, Any]) -> PendingRow:
        if row["id"] not in rows:
            clean = {k: row[k] for k in row if k not in ("i", "similarity")}
            clean["provenance"] = dict(clean["provenance"] or {})
            rows[row["id"]] = PendingRow(clean, None, new=False)
        return rows[row["id"]]

    def make(i: int, item: MemoryIn, *, version: int, supersedes: int | None, refs: list[str]) -> PendingRow:
        p = new_row(candidates.new_ids[i], item, vectors[i], version=version, supersedes=supersedes, refs=refs,
                    retention=retention, now=now, wall_now=wall_now)
        rows[p.row["id"]] = p
        return p

    for i, item in enumerate(items):
        vec = vectors[i]
        target: PendingRow | None = None
        # 1. The caller's own id: same subject + ref is the same fact, changed or not.
        if item.ref:
            in_batch = [p for p in rows.values() if p.live and p.row["subject"] == item.subject
                        and item.ref in (p.row["provenance"].get("refs") or [])]
            if in_batch:
                target = in_batch[-1]
            elif i in candidates.by_ref and existing(candidates.by_ref[i]).live:
                target = rows[candidates.by_ref[i]["id"]]
            if target is not None:
                if same_text(target.row["text"], item.text):
                    merge_into(target, item)
                    outcomes.append((target.row["id"], "merged"))
                else:
                    target.row["current"] = False
                    target.dirty = True
                    old_refs = list(target.row["provenance"].get("refs") or [])
                    p = make(i, item, version=target.row["version"] + 1, supersedes=target.row["id"], refs=old_refs)
                    outcomes.append((p.row["id"], "versioned"))
                continue
        # 2. A near-duplicate of the same subject and kind, in the database or earlier in the batch.
        best, best_sim = None, -1.0
        nearest = candidates.nearest.get(i)
        if nearest is not None and nearest["similarity"] is not None:
            cand = existing(nearest)
            if cand.live:
                best, best_sim = cand, float(nearest["similarity"])
        for p in rows.values():
            if p.new and p.live and p.vector is not None and p.row["subject"] == item.subject \
                    and p.row["kind"] == item.kind.value:
                sim = float(np.dot(p.vector, vec))
                if sim > best_sim:
                    best, best_sim = p, sim
        if best is not None and is_near_duplicate(best.row["text"], item.text, best_sim, merge_threshold):
            merge_into(best, item)
            outcomes.append((best.row["id"], "merged"))
            continue
        # 3. Something new.
        p = make(i, item, version=1, supersedes=None, refs=[])
        outcomes.append((p.row["id"], "inserted"))
    return Plan(list(rows.values()), outcomes)


def links_of(inserted: Sequence[PendingRow]) -> list[tuple[Node, Node, str]]:
    """The metadata-index links new rows carry: to the version they supersede, and to where they were learned."""
    links: list[tuple[Node, Node, str]] = []
    for p in inserted:
        mem: Node = ("memory", str(p.row["id"]))
        if p.row["supersedes"]:
            links.append((mem, ("memory", str(p.row["supersedes"])), "supersedes"))
        prov = p.row["provenance"]
        for key, type_ in PROVENANCE_NODES:
            if prov.get(key) is not None:
                links.append((mem, (type_, str(prov[key])), "learned_in"))
    return links
