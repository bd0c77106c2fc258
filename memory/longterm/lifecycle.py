"""A memory's life after it is written: versions, citations, forgetting, reclamation, summaries and stats."""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from memory.errors import MemoryNotFound
from memory.index import CITES, PART_OF, Node, links_many, step_node
from memory.longterm.records import (
    Forgotten,
    Kind,
    MemoryIn,
    MemoryRecord,
    MemoryStats,
    Provenance,
    Reclaimed,
    to_record,
)
from memory.longterm.store import COLUMNS, lock_subjects, rows_by_id

REDACTED = "[forgotten]"

CITE = """
INSERT INTO memory_refs (memory_id, run_id, step, cited_at)
SELECT id, %s, %s, coalesce(%s, now()) FROM memories WHERE id = ANY(%s) AND forgotten_at IS NULL
ON CONFLICT DO NOTHING RETURNING memory_id
"""
# Only a first citation by a step counts: a retried step cites again and must not inflate the count.
BUMP_REFCOUNT = "UPDATE memories SET refcount = refcount + 1 WHERE id = ANY(%s)"

# Walk `supersedes` both ways by id only (UNION needs hashable columns; vector and jsonb are not).
VERSIONS = f"""
WITH RECURSIVE older(id, supersedes) AS (
    SELECT id, supersedes FROM memories WHERE id = %(id)s
    UNION SELECT m.id, m.supersedes FROM memories m JOIN older o ON m.id = o.supersedes
), newer(id) AS (
    SELECT id FROM memories WHERE id = %(id)s
    UNION SELECT m.id FROM memories m JOIN newer n ON m.supersedes = n.id
)
SELECT {COLUMNS} FROM memories
WHERE id IN (SELECT id FROM older UNION SELECT id FROM newer) ORDER BY version, id
"""
TOMBSTONE = """
UPDATE memories SET text = %s, embedding = NULL, forgotten_at = %s, forgotten_by = %s
WHERE id = ANY(%s) AND forgotten_at IS NULL
"""

# What reclamation may remove: past retention, never cited, and nothing outside memory points at it.
# Links between memories (a summary's sources, a newer version) do not keep a memory alive; a
# tombstone is kept as the record that something was forgotten.
RECLAIMABLE = """
SELECT m.id FROM memories m
WHERE m.retention_until < %(now)s AND m.forgotten_at IS NULL AND m.refcount = 0
  AND NOT EXISTS (SELECT 1 FROM memory_refs r WHERE r.memory_id = m.id)
  AND NOT EXISTS (SELECT 1 FROM memory_links l
                  WHERE l.to_type = 'memory' AND l.to_id = m.id::text AND l.from_type <> 'memory')
"""
PREVIEW_RECLAIM = f"""
SELECT id, ref, subject, kind, version, created_at, retention_until FROM memories
WHERE id IN ({RECLAIMABLE}) ORDER BY retention_until, id LIMIT %(limit)s
"""
# FOR UPDATE SKIP LOCKED: a memory being cited or linked right now holds a KEY SHARE lock (the
# memory_refs foreign key, index.link), so reclamation passes over it instead of racing it.
RECLAIM = f"""
DELETE FROM memories WHERE id IN ({RECLAIMABLE} FOR UPDATE OF m SKIP LOCKED)
RETURNING id, ref, subject, kind, version, created_at, retention_until
"""
DROP_MEMORY_LINKS = """
DELETE FROM memory_links
WHERE (from_type = 'memory' AND from_id = ANY(%(ids)s)) OR (to_type = 'memory' AND to_id = ANY(%(ids)s))
"""
STATS = """
SELECT kind,
       count(*) FILTER (WHERE current AND forgotten_at IS NULL) AS live,
       count(*) FILTER (WHERE NOT current AND forgotten_at IS NULL) AS superseded,
       count(*) FILTER (WHERE forgotten_at IS NOT NULL) AS tombstoned,
       count(*) AS total
FROM memories GROUP BY kind
"""
SIZE_ON_DISK = """
SELECT pg_total_relation_size('memories') + pg_total_relation_size('memory_links')
     + pg_total_relation_size('memory_refs') AS bytes
"""
UNSUMMARISED = f"""
SELECT {COLUMNS} FROM memories m
WHERE m.subject = %s AND m.kind = 'customer_interaction' AND m.current AND m.forgotten_at IS NULL
  AND m.created_at < %s
  AND NOT EXISTS (SELECT 1 FROM memory_links l WHERE l.to_type = 'memory' AND l.to_id = m.id::text
                                               AND l.relation = 'summarises')
ORDER BY m.created_at, m.id
"""
# Subjects that have interactions UNSUMMARISED would return, for upkeep to walk.
SUBJECTS_TO_SUMMARISE = """
SELECT DISTINCT m.subject FROM memories m
WHERE m.kind = 'customer_interaction' AND m.current AND m.forgotten_at IS NULL AND m.created_at < %s
  AND NOT EXISTS (SELECT 1 FROM memory_links l WHERE l.to_type = 'memory' AND l.to_id = m.id::text
                                               AND l.relation = 'summarises')
ORDER BY m.subject
"""


# --- reading ---------------------------------------------------------------------------------------

def get(cur: psycopg.Cursor, memory_id: int) -> MemoryRecord:
    """One memory, live or not (a dict_row cursor); raises MemoryNotFound if it is not there."""
    row = rows_by_id(cur, [memory_id]).get(memory_id)
    if row is None:
        raise MemoryNotFound(memory_id)
    return to_record(row)


def versions(cur: psycopg.Cursor, memory_id: int) -> list[MemoryRecord]:
    """Every version of the fact `memory_id` belongs to, oldest first; raises MemoryNotFound."""
    rows = cur.execute(VERSIONS, {"id": memory_id}).fetchall()
    if not rows:
        raise MemoryNotFound(memory_id)
    return [to_record(r) for r in rows]


# --- citations -------------------------------------------------------------------------------------

def cite(conn: psycopg.Connection, ids: Sequence[int], *, run_id: int, step: str, step_key: str,
         at: datetime | None) -> int:
    """Record the citations in the caller's open transaction; returns how many were new."""
    with conn.cursor(row_factory=dict_row) as cur:
        # The insert's foreign-key check locks each memory row (KEY SHARE) until commit, which
        # is what keeps a concurrent reclaim() (FOR UPDATE SKIP LOCKED) off it.
        fresh = [r["memory_id"] for r in cur.execute(CITE, (run_id, step, at, list(ids))).fetchall()]
        if fresh:
            cur.execute(BUMP_REFCOUNT, (fresh,))
    node = step_node(step_key)
    links_many(conn, [(node, ("run", str(run_id)), PART_OF)] + [(node, ("memory", str(i)), CITES) for i in fresh])
    return len(fresh)


# --- forgetting and reclamation --------------------------------------------------------------------

def forget(conn: psycopg.Connection, memory_id: int, *, by: str, when: datetime) -> list[Forgotten]:
    """Tombstone every live version of `memory_id` in the caller's open transaction; raises MemoryNotFound."""
    with conn.cursor(row_factory=dict_row) as cur:
        head = rows_by_id(cur, [memory_id]).get(memory_id)
        if head is None:
            raise MemoryNotFound(memory_id)
        lock_subjects(cur, [head["subject"]])
        chain = cur.execute(VERSIONS, {"id": memory_id}).fetchall()
        rows = [r for r in chain if r["forgotten_at"] is None]
        cur.execute(TOMBSTONE, (REDACTED, when, by, [r["id"] for r in rows]))
    return [
        Forgotten(id=r["id"], ref=r["ref"], subject=r["subject"], kind=r["kind"], version=r["version"],
                  text_sha256=hashlib.sha256(r["text"].encode()).hexdigest(), forgotten_at=when, forgotten_by=by)
        for r in rows
    ]


def reclaimable(cur: psycopg.Cursor, now: datetime, *, limit: int) -> list[Reclaimed]:
    """What `reclaim(now)` would remove, oldest retention first (a dict_row cursor)."""
    return [Reclaimed(**r) for r in cur.execute(PREVIEW_RECLAIM, {"now": now, "limit": limit}).fetchall()]


def reclaim(conn: psycopg.Connection, now: datetime) -> list[Reclaimed]:
    """Delete what is reclaimable and its links, in the caller's open transaction; returns it by id."""
    with conn.cursor(row_factory=dict_row) as cur:
        removed = [Reclaimed(**r) for r in cur.execute(RECLAIM, {"now": now}).fetchall()]
        if removed:
            cur.execute(DROP_MEMORY_LINKS, {"ids": [str(r.id) for r in removed]})
    return sorted(removed, key=lambda r: r.id)


# --- stats -----------------------------------------------------------------------------------------

def stats(cur: psycopg.Cursor, now: datetime) -> MemoryStats:
    """Counts by kind and state, size on disk, and what reclamation at `now` would remove (a dict_row cursor)."""
    rows = cur.execute(STATS).fetchall()
    size = cur.execute(SIZE_ON_DISK).fetchone()
    preview = reclaimable(cur, now, limit=100)
    return MemoryStats(
        by_kind={r["kind"]: r["live"] for r in rows},
        current=sum(r["live"] for r in rows),
        superseded=sum(r["superseded"] for r in rows),
        tombstoned=sum(r["tombstoned"] for r in rows),
        total=sum(r["total"] for r in rows),
        bytes_on_disk=int(size["bytes"] if size else 0),
        next_reclamation=preview,
    )


# --- summaries -------------------------------------------------------------------------------------

def subjects_to_summarise(cur: psycopg.Cursor, older_than: datetime) -> list[str]:
    """Subjects with current interactions older than `older_than` that no summary covers yet."""
    return [r["subject"] for r in cur.execute(SUBJECTS_TO_SUMMARISE, (older_than,)).fetchall()]


def unsummarised(cur: psycopg.Cursor, subject: str, older_than: datetime) -> list[MemoryRecord]:
    """A subject's current interactions older than `older_than` that no summary covers, oldest first."""
    return [to_record(r) for r in cur.execute(UNSUMMARISED, (subject, older_than)).fetchall()]


def summary_of(
    subject: str,
    sources: Sequence[MemoryRecord],
    text: str,
    *,
    provenance: Provenance | Mapping[str, Any] | None,
    at: datetime | None,
) -> MemoryIn:
    """The summary memory for `sources` (pure): its provenance names them, its ref the newest of them."""
    given = provenance.model_dump() if isinstance(provenance, Provenance) else dict(provenance or {})
    prov = Provenance(**{**given, "source": given.get("source") or "summary", "summarises": [s.id for s in sources]})
    return MemoryIn(text=text, kind=Kind.SUMMARY, subject=subject, provenance=prov,
                    ref=f"summary:{subject}:{sources[-1].id}", at=at)


def summary_links(summary_id: int, sources: Sequence[MemoryRecord]) -> list[tuple[Node, Node, str]]:
    """The `summarises` links from a summary to each of its sources (pure)."""
    return [(("memory", str(summary_id)), ("memory", str(s.id)), "summarises") for s in sources]
