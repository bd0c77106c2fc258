"""Writing memories: look up what a batch may merge into or supersede, apply the merge plan, link the new rows."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from memory.index import Node, links_many
from memory.longterm.merge_plan import Candidates, Plan, links_of, plan_batch
from memory.longterm.records import Kind, MemoryIn, MemoryRecord, to_record
from memory.longterm.store import lock_subjects, prefixed_columns, rows_by_id

ALLOCATE_IDS = "SELECT nextval(pg_get_serial_sequence('memories', 'id')) AS id FROM generate_series(1, %s)"
# The current memory answering for each (subject, ref), with its similarity to the incoming text.
FIND_BY_REF = f"""
SELECT q.i, 1 - (m.embedding <=> q.embedding) AS similarity, {prefixed_columns("m")}
FROM unnest(%s::int[], %s::text[], %s::text[], %s::vector[]) AS q(i, subject, ref, embedding)
JOIN memories m ON m.subject = q.subject AND m.current AND m.forgotten_at IS NULL
    AND (m.ref = q.ref OR m.provenance->'refs' ? q.ref)
"""
# Nearest live memory of the same subject and kind. "+ 0" keeps the planner off the HNSW index:
# pgvector 0.6 filters after the index scan, so a subject's rows could fall outside ef_search and be
# missed; a subject's memories are few, and the (subject, kind) b-tree makes the exact scan cheap.
NEAREST_SAME_SUBJECT = f"""
SELECT q.i, n.similarity, {prefixed_columns("n")}
FROM unnest(%s::int[], %s::text[], %s::text[], %s::vector[]) AS q(i, subject, kind, embedding)
CROSS JOIN LATERAL (
    SELECT 1 - (m.embedding <=> q.embedding) AS similarity, m.*
    FROM memories m
    WHERE m.subject = q.subject AND m.kind = q.kind AND m.current AND m.forgotten_at IS NULL
      AND m.embedding IS NOT NULL
    ORDER BY (m.embedding <=> q.embedding) + 0
    LIMIT 1
) n
"""
UPDATE_MERGED = "UPDATE memories SET provenance = %s, current = %s WHERE id = %s"
INSERT_MEMORY = """
INSERT INTO memories (id, ref, text, embedding, kind, subject, provenance, created_at, version,
                      supersedes, current, retention_until)
VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s, %s, %s, %s)
"""

# Extra links a caller wants in the batch's transaction, given the memory id answering for each item.
ExtraLinks = Callable[[list[int]], list[tuple[Node, Node, str]]]


def find_candidates(cur: psycopg.Cursor, items: Sequence[MemoryIn], vectors: np.ndarray) -> Candidates:
    """The two look-ups the merge planner needs, and one new id per item."""
    n = len(items)
    idx = list(range(n))
    by_ref: dict[int, dict[str, Any]] = {}
    with_ref = [i for i in idx if items[i].ref]
    if with_ref:
        cur.execute(FIND_BY_REF, (with_ref, [items[i].subject for i in with_ref],
                                  [items[i].ref for i in with_ref], [vectors[i] for i in with_ref]))
        by_ref = {r["i"]: r for r in cur.fetchall()}
    cur.execute(NEAREST_SAME_SUBJECT, (idx, [i.subject for i in items], [i.kind.value for i in items],
                                       list(vectors)))
    nearest = {r["i"]: r for r in cur.fetchall()}
    new_ids = [r["id"] for r in cur.execute(ALLOCATE_IDS, (n,)).fetchall()]
    return Candidates(by_ref=by_ref, nearest=nearest, new_ids=new_ids)


def apply_plan(cur: psycopg.Cursor, plan: Plan) -> None:
    """Write what the plan changed: updates to existing rows, then the new rows."""
    # Existing rows first: a superseded row must stop being current before its successor
    # is inserted, or the one-current-version-per-ref index refuses the insert.
    updates = [(Jsonb(p.row["provenance"]), p.row["current"], p.row["id"])
               for p in plan.rows if p.dirty and not p.new]
    if updates:
        cur.executemany(UPDATE_MERGED, updates)
    inserts = [p for p in plan.rows if p.new]
    if inserts:
        cur.executemany(INSERT_MEMORY, [
            (r["id"], r["ref"], r["text"], p.vector, r["kind"], r["subject"], Jsonb(r["provenance"]),
             r["created_at"], r["version"], r["supersedes"], r["current"], r["retention_until"])
            for p in inserts for r in [p.row]
        ])


def write_batch(
    conn: psycopg.Connection,
    items: Sequence[MemoryIn],
    vectors: np.ndarray,
    *,
    merge_threshold: float,
    retention: Mapping[Kind, timedelta | None],
    now: datetime | None,
    wall_now: datetime,
    also: ExtraLinks | None = None,
) -> list[MemoryRecord]:
    """Write one batch in the caller's open transaction; one record per item, with its outcome."""
    with conn.cursor(row_factory=dict_row) as cur:
        lock_subjects(cur, (i.subject for i in items))
        plan = plan_batch(items, vectors, find_candidates(cur, items, vectors), merge_threshold=merge_threshold,
                          retention=retention, now=now, wall_now=wall_now)
        apply_plan(cur, plan)
        links = links_of([p for p in plan.rows if p.new])
        ids = [rid for rid, _ in plan.outcomes]
        if also is not None:
            links.extend(also(ids))
        links_many(conn, links)
        rows = rows_by_id(cur, ids)
    return [to_record(rows[rid], outcome) for rid, outcome in plan.outcomes]
