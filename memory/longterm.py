"""Long-term memory in PostgreSQL: write with merge and versioning, hybrid recall, citations and upkeep."""
from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from difflib import SequenceMatcher
from enum import StrEnum
from typing import Any, Literal, Protocol

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from memory.index import CITES, PART_OF, MemoryNotFound, Node, links_many, step_node

__all__ = [
    "Forgotten",
    "Kind",
    "LongTermMemory",
    "MemoryIn",
    "MemoryNotFound",
    "MemoryRecord",
    "MemoryStats",
    "Provenance",
    "Recalled",
    "Reclaimed",
    "estimate_tokens",
]

DIMENSIONS = 384
REDACTED = "[forgotten]"


class Kind(StrEnum):
    CUSTOMER_INTERACTION = "customer_interaction"
    DECISION = "decision"
    POLICY = "policy"
    OUTCOME = "outcome"
    SUMMARY = "summary"
    FACT = "fact"


# How long each kind is kept before reclamation may remove it (if nothing references it).
# Interactions and outcomes age out; decisions, policies, facts and summaries stay until forgotten.
DEFAULT_RETENTION: dict[Kind, timedelta | None] = {
    Kind.CUSTOMER_INTERACTION: timedelta(days=365),
    Kind.OUTCOME: timedelta(days=365),
    Kind.DECISION: None,
    Kind.POLICY: None,
    Kind.SUMMARY: None,
    Kind.FACT: None,
}


class Embedder(Protocol):
    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


class Provenance(BaseModel):
    """Where a memory came from; extra keys are kept as given."""

    model_config = ConfigDict(extra="allow")
    intent_id: int | None = None
    run_id: int | None = None
    audit_event_id: int | None = None
    source: str | None = None


class MemoryIn(BaseModel):
    text: str = Field(min_length=1)
    kind: Kind
    subject: str = Field(min_length=1)
    provenance: Provenance = Field(default_factory=Provenance)
    ref: str | None = None
    at: datetime | None = None
    retention_until: datetime | None = None


WriteOutcome = Literal["inserted", "merged", "versioned"]


class MemoryRecord(BaseModel):
    id: int
    ref: str | None
    # Every caller id this memory answers for: its own and those of near-duplicates merged into it.
    refs: list[str]
    text: str
    kind: Kind
    subject: str
    provenance: dict[str, Any]
    created_at: datetime
    last_used_at: datetime | None
    refcount: int
    version: int
    supersedes: int | None
    current: bool
    forgotten_at: datetime | None
    forgotten_by: str | None
    retention_until: datetime | None
    # Set by remember(): what the write did.
    outcome: WriteOutcome | None = None


class Recalled(BaseModel):
    id: int
    ref: str | None
    refs: list[str]
    text: str
    kind: Kind
    subject: str
    # Reciprocal-rank-fusion score: higher is better; comparable within one recall only.
    score: float
    similarity: float | None
    vector_rank: int | None
    text_rank: int | None
    source: str | None
    provenance: dict[str, Any]
    created_at: datetime
    version: int
    current: bool


class Forgotten(BaseModel):
    """What forget() tombstoned: a digest of the text, never the text, so the audit log cannot leak it."""

    id: int
    ref: str | None
    subject: str
    kind: Kind
    version: int
    text_sha256: str
    forgotten_at: datetime
    forgotten_by: str


class Reclaimed(BaseModel):
    id: int
    ref: str | None
    subject: str
    kind: Kind
    version: int
    created_at: datetime
    retention_until: datetime


class MemoryStats(BaseModel):
    by_kind: dict[str, int]
    current: int
    superseded: int
    tombstoned: int
    total: int
    bytes_on_disk: int
    next_reclamation: list[Reclaimed]


def estimate_tokens(text: str) -> int:
    """A model-free token estimate (~4 characters a token for English), good enough for budgets."""
    return max(1, (len(text) + 3) // 4)


# --- SQL -------------------------------------------------------------------------------------------

COLUMNS = """id, ref, text, kind, subject, provenance, created_at, last_used_at, refcount, version,
    supersedes, current, forgotten_at, forgotten_by, retention_until"""

# Merge-on-write and versioning read-then-write per subject: two writers on the same subject would
# both miss each other's row and insert twins. A transaction-scoped advisory lock on the subject
# serialises them (taken in sorted order across a batch, so two batches cannot deadlock).
LOCK_SUBJECT = "SELECT pg_advisory_xact_lock(7242005, hashtext(%s))"
ALLOCATE_IDS = "SELECT nextval(pg_get_serial_sequence('memories', 'id')) AS id FROM generate_series(1, %s)"
# The current memory answering for each (subject, ref), with its similarity to the incoming text.
FIND_BY_REF = f"""
SELECT q.i, 1 - (m.embedding <=> q.embedding) AS similarity,
       {", ".join(f"m.{c.strip()}" for c in COLUMNS.split(","))}
FROM unnest(%s::int[], %s::text[], %s::text[], %s::vector[]) AS q(i, subject, ref, embedding)
JOIN memories m ON m.subject = q.subject AND m.current AND m.forgotten_at IS NULL
    AND (m.ref = q.ref OR m.provenance->'refs' ? q.ref)
"""
# Nearest live memory of the same subject and kind. "+ 0" keeps the planner off the HNSW index:
# pgvector 0.6 filters after the index scan, so a subject's rows could fall outside ef_search and be
# missed; a subject's memories are few, and the (subject, kind) b-tree makes the exact scan cheap.
NEAREST_SAME_SUBJECT = f"""
SELECT q.i, n.similarity, {", ".join(f"n.{c.strip()}" for c in COLUMNS.split(","))}
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
# Provenance ids that become "learned_in" links in the metadata index.
PROVENANCE_NODES = (("run_id", "run"), ("intent_id", "intent"), ("audit_event_id", "audit_event"))
UPDATE_MERGED = "UPDATE memories SET provenance = %s, current = %s WHERE id = %s"
INSERT_MEMORY = """
INSERT INTO memories (id, ref, text, embedding, kind, subject, provenance, created_at, version,
                      supersedes, current, retention_until)
VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s, %s, %s, %s)
"""
SELECT_BY_IDS = f"SELECT {COLUMNS} FROM memories WHERE id = ANY(%s)"

# Per transaction: SET LOCAL leaves the pooled connection as it found it.
SET_EF_SEARCH = "SELECT set_config('hnsw.ef_search', %s, true)"
# The planner's row estimate of the HNSW index, kept by autovacuum: -1 until first analysed.
INDEX_SIZE = "SELECT reltuples::bigint AS reltuples FROM pg_class WHERE oid = 'memories_embedding_hnsw'::regclass"
EF_SEARCH_RECHECK_SECONDS = 300.0
# The HNSW candidate list recall@10 >= 0.95 needs as the index grows, from bench/bench_memory.py on
# 2 cores (clustered 384-d vectors, queries at cosine 0.45 to their answer, shared buffers holding the
# index): at 200k ef_search 100 gave 0.95 (p95 4.9 ms); at 1M, over 1000 queries, 300 gave 0.947 and
# 325 gave 0.955 (p95 16.9 ms). Past 1M, unmeasured.
EF_SEARCH_BY_SIZE = ((200_000, 100), (400_000, 200), (1_000_000, 325))
EF_SEARCH_BEYOND = 400


def ef_search_for(live_memories: int) -> int:
    """ef_search for an index of `live_memories` rows (pure)."""
    return next((ef for upto, ef in EF_SEARCH_BY_SIZE if live_memories <= upto), EF_SEARCH_BEYOND)
# The vector leg. ANN form: matches the partial HNSW index's predicate so the planner can use it.
VECTOR_ANN = """
SELECT id, 1 - (embedding <=> %(q)s) AS similarity FROM memories
WHERE current AND forgotten_at IS NULL {filters}
ORDER BY embedding <=> %(q)s LIMIT %(n)s
"""
# Exact form, for a subject (few rows, and post-filtered ANN could miss them) or with history.
VECTOR_EXACT = """
SELECT id, 1 - (embedding <=> %(q)s) AS similarity FROM memories
WHERE forgotten_at IS NULL AND embedding IS NOT NULL {filters}
ORDER BY (embedding <=> %(q)s) + 0 LIMIT %(n)s
"""
# The keyword leg. websearch_to_tsquery ANDs every word, too strict for a question ("what did we
# promise Ana" must match a note that never says "promise"), so its ANDs become ORs; "INV-2041"
# stays a phrase of its parts. Rank fusion counts ranks, not scores, so a word found in half the
# memories ("invoice") would hand every such memory a second vote and bury the one memory that has
# the name or number asked about. So each query word is weighed by its document frequency (BM25's
# idf, counted through the GIN index and capped), and words in more than `max_df` of the memories
# give no keyword evidence at all, unless every word is that common.
TEXT_LEG = """
WITH q AS (
    SELECT replace(websearch_to_tsquery('english', %(question)s)::text, ' & ', ' | ')::tsquery AS anyq
), total AS (
    SELECT greatest(1, CASE WHEN c.reltuples >= 100000 THEN c.reltuples::bigint
                            ELSE (SELECT count(*) FROM memories WHERE forgotten_at IS NULL) END) AS n
    FROM pg_class c WHERE c.oid = 'memories'::regclass
), terms AS (
    SELECT t.lexeme, t.tq, total.n,
           (SELECT count(*) FROM (SELECT 1 FROM memories m WHERE m.tsv @@ t.tq AND m.forgotten_at IS NULL
                                  LIMIT %(df_cap)s) s) AS df
    FROM (SELECT DISTINCT lexeme, plainto_tsquery('simple', lexeme) AS tq
          FROM unnest(tsvector_to_array(to_tsvector('english', %(question)s))) AS lexeme) t, total
), weighed AS (
    SELECT tq, ln(1 + (n - df + 0.5) / (df + 0.5)) AS idf,
           df <= least(%(df_cap)s - 1, greatest(2, n * %(max_df)s)) AS selective
    FROM terms
), used AS (
    SELECT tq, idf FROM weighed WHERE selective OR NOT EXISTS (SELECT 1 FROM weighed WHERE selective)
)
SELECT m.id, sum(u.idf) + ts_rank_cd(m.tsv, q.anyq) AS rank
FROM memories m CROSS JOIN q JOIN used u ON m.tsv @@ u.tq
WHERE numnode(q.anyq) > 0 AND m.tsv @@ q.anyq AND m.forgotten_at IS NULL {filters}
GROUP BY m.id, m.tsv, q.anyq
ORDER BY rank DESC, m.id DESC LIMIT %(n)s
"""
TOUCH = "UPDATE memories SET last_used_at = %s WHERE id = ANY(%s)"

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

_NUMBERS = re.compile(r"\d+(?:[.,:/-]\d+)*")
_WORDS = re.compile(r"\w+")
# Share of the words, in order, two texts must have in common to be one memory (difflib's ratio).
SAME_WORDING = 0.75


def _numbers(text: str) -> set[str]:
    return set(_NUMBERS.findall(text))


def _same_wording(a: str, b: str) -> bool:
    return SequenceMatcher(None, _WORDS.findall(a.casefold()), _WORDS.findall(b.casefold())).ratio() >= SAME_WORDING


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _record(row: Mapping[str, Any], outcome: WriteOutcome | None = None) -> MemoryRecord:
    prov = dict(row["provenance"] or {})
    refs = list(prov.get("refs") or ([row["ref"]] if row["ref"] else []))
    return MemoryRecord(**{k: row[k] for k in MemoryRecord.model_fields if k in row and k != "refs"},
                        refs=refs, outcome=outcome)


def _provenance_entry(item: MemoryIn) -> dict[str, Any]:
    entry = item.provenance.model_dump(exclude_none=True)
    if item.ref:
        entry["ref"] = item.ref
    if item.at:
        entry["at"] = item.at.isoformat()
    return entry


class _Pending:
    """A row as this batch will leave it: existing (to update) or new (to insert)."""

    def __init__(self, row: dict[str, Any], vector: np.ndarray | None, *, new: bool) -> None:
        self.row = row
        self.vector = vector
        self.new = new
        self.dirty = new


class LongTermMemory:
    """Memories in PostgreSQL with pgvector; every method takes a connection from `pool` per call.

    The pool is shared with the rest of opsos, so pgvector's type adapters are registered on each
    connection the first time this class takes it (a pool may instead pass
    `configure=pgvector.psycopg.register_vector`, which this detects and leaves alone).
    """

    def __init__(
        self,
        pool: ConnectionPool,
        embedder: Embedder,
        *,
        # Cosine from which two memories of one subject and kind may be one: MiniLM scores a
        # restated note at 0.97; it scores some different facts as high (see _plan's extra checks).
        merge_threshold: float = 0.95,
        # Candidate list of the HNSW search; None picks it from the index's size (`ef_search_for`).
        ef_search: int | None = None,
        rrf_k: int = 60,
        keyword_max_df: float = 0.1,
        keyword_df_cap: int = 20_000,
        retention: Mapping[Kind, timedelta | None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.pool = pool
        self.embedder = embedder
        self.merge_threshold = merge_threshold
        self.ef_search = ef_search
        self._sized: tuple[float, int] | None = None  # (monotonic time, ef_search) of the last size check
        self.rrf_k = rrf_k
        self.keyword_max_df = keyword_max_df
        self.keyword_df_cap = keyword_df_cap
        self.retention = {**DEFAULT_RETENTION, **(retention or {})}
        self._clock = clock

    # --- connections ---------------------------------------------------------------------------

    @contextmanager
    def _conn(self, caller: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        """A transaction of our own, or a savepoint inside the caller's open one."""
        with nullcontext(caller) if caller is not None else self.pool.connection() as conn:
            if conn.adapters.types.get("vector") is None:
                register_vector(conn)
            with conn.transaction():
                yield conn

    def _now(self) -> datetime | None:
        return self._clock() if self._clock else None

    def _ef_search(self, cur: psycopg.Cursor) -> int:
        """The configured ef_search, or one for the index's size, re-read every few minutes."""
        if self.ef_search is not None:
            return self.ef_search
        now = time.monotonic()
        if self._sized is None or now - self._sized[0] > EF_SEARCH_RECHECK_SECONDS:
            row = cur.execute(INDEX_SIZE).fetchone()
            live = int(row["reltuples"]) if row and row["reltuples"] is not None else 0
            self._sized = (now, ef_search_for(live))
        return self._sized[1]

    # --- writing -------------------------------------------------------------------------------

    def remember(
        self,
        text: str,
        *,
        kind: Kind | str,
        subject: str,
        provenance: Provenance | Mapping[str, Any] | None = None,
        ref: str | None = None,
        at: datetime | None = None,
        conn: psycopg.Connection | None = None,
    ) -> MemoryRecord:
        """Store one memory, merged into a near-duplicate or superseding the same subject+ref.

        Returns the record as it now stands, with `outcome` saying which of the three happened.
        With `conn`, writes inside the caller's open transaction, so the caller's audit event
        commits with the memory, or neither does.
        """
        prov = provenance if isinstance(provenance, Provenance) else Provenance(**(provenance or {}))
        item = MemoryIn(text=text, kind=Kind(kind), subject=subject, provenance=prov, ref=ref, at=at)
        return self._write_batch([item], 1, caller=conn)[0]

    def remember_many(
        self,
        items: Iterable[MemoryIn | Mapping[str, Any]],
        *,
        batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> list[MemoryRecord]:
        """Bulk write: embeds a batch at a time and writes each batch in one transaction.

        `progress(n)` is called after each batch with the number of items it held. Items are applied
        in order, so a later item may merge into or supersede an earlier one of the same batch.
        """
        out: list[MemoryRecord] = []
        batch: list[MemoryIn] = []
        for item in items:
            batch.append(item if isinstance(item, MemoryIn) else MemoryIn.model_validate(item))
            if len(batch) >= batch_size:
                out.extend(self._write_batch(batch, batch_size))
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            out.extend(self._write_batch(batch, batch_size))
            if progress:
                progress(len(batch))
        return out

    def _write_batch(
        self,
        items: list[MemoryIn],
        batch_size: int,
        also: Callable[[list[int]], list[tuple[Node, Node, str]]] | None = None,
        caller: psycopg.Connection | None = None,
    ) -> list[MemoryRecord]:
        vectors = self.embedder.embed([i.text for i in items], batch_size=min(batch_size, 64))
        with self._conn(caller) as conn, conn.cursor(row_factory=dict_row) as cur:
            for subject in sorted({i.subject for i in items}):
                cur.execute(LOCK_SUBJECT, (subject,))
            plan, outcomes = self._plan(cur, items, vectors)
            # Existing rows first: a superseded row must stop being current before its successor
            # is inserted, or the one-current-version-per-ref index refuses the insert.
            updates = [(Jsonb(p.row["provenance"]), p.row["current"], p.row["id"])
                       for p in plan if p.dirty and not p.new]
            if updates:
                cur.executemany(UPDATE_MERGED, updates)
            inserts = [p for p in plan if p.new]
            if inserts:
                cur.executemany(INSERT_MEMORY, [
                    (r["id"], r["ref"], r["text"], p.vector, r["kind"], r["subject"], Jsonb(r["provenance"]),
                     r["created_at"], r["version"], r["supersedes"], r["current"], r["retention_until"])
                    for p in inserts for r in [p.row]
                ])
            links: list[tuple[Node, Node, str]] = []
            for p in inserts:
                mem: Node = ("memory", str(p.row["id"]))
                if p.row["supersedes"]:
                    links.append((mem, ("memory", str(p.row["supersedes"])), "supersedes"))
                prov = p.row["provenance"]
                for key, type_ in PROVENANCE_NODES:
                    if prov.get(key) is not None:
                        links.append((mem, (type_, str(prov[key])), "learned_in"))
            ids = [rid for rid, _ in outcomes]
            if also is not None:
                links.extend(also(ids))
            links_many(conn, links)
            rows = {r["id"]: r for r in cur.execute(SELECT_BY_IDS, (ids,)).fetchall()}
        return [_record(rows[rid], outcome) for rid, outcome in outcomes]

    def _plan(
        self, cur: psycopg.Cursor, items: list[MemoryIn], vectors: np.ndarray
    ) -> tuple[list[_Pending], list[tuple[int, WriteOutcome]]]:
        """Decide, item by item, insert / merge / new version; pure apart from the two look-ups."""
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

        rows: dict[int, _Pending] = {}  # by memory id, everything this batch has touched or made
        outcomes: list[tuple[int, WriteOutcome]] = []

        def existing(row: Mapping[str, Any]) -> _Pending:
            if row["id"] not in rows:
                clean = {k: row[k] for k in row if k not in ("i", "similarity")}
                clean["provenance"] = dict(clean["provenance"] or {})
                rows[row["id"]] = _Pending(clean, None, new=False)
            return rows[row["id"]]

        def live(p: _Pending) -> bool:
            return bool(p.row["current"]) and p.row["forgotten_at"] is None

        def merge(target: _Pending, item: MemoryIn) -> None:
            prov = target.row["provenance"]
            refs = list(prov.get("refs") or ([target.row["ref"]] if target.row["ref"] else []))
            if item.ref and item.ref not in refs:
                refs.append(item.ref)
            prov["refs"] = refs
            # Idempotent: importing the same file twice must not grow the provenance each time.
            entry = _provenance_entry(item)
            restated = item.ref == target.row["ref"] and all(
                prov.get(key) == value for key, value in entry.items() if key not in ("ref", "at"))
            if not restated and entry not in prov.get("merged", []):
                prov.setdefault("merged", []).append(entry)
            target.dirty = True

        for i, item in enumerate(items):
            vec = vectors[i]
            target: _Pending | None = None
            # 1. The caller's own id: same subject + ref is the same fact, changed or not.
            if item.ref:
                in_batch = [p for p in rows.values() if live(p) and p.row["subject"] == item.subject
                            and item.ref in (p.row["provenance"].get("refs") or [])]
                if in_batch:
                    target = in_batch[-1]
                elif i in by_ref and live(existing(by_ref[i])):
                    target = rows[by_ref[i]["id"]]
                if target is not None:
                    if _norm(target.row["text"]) == _norm(item.text):
                        merge(target, item)
                        outcomes.append((target.row["id"], "merged"))
                    else:
                        target.row["current"] = False
                        target.dirty = True
                        old_refs = list(target.row["provenance"].get("refs") or [])
                        p = self._new_row(new_ids[i], item, vec, version=target.row["version"] + 1,
                                          supersedes=target.row["id"], refs=old_refs)
                        rows[p.row["id"]] = p
                        outcomes.append((p.row["id"], "versioned"))
                    continue
            # 2. A near-duplicate of the same subject and kind. Embeddings barely see numbers
            #    ("paid 120" vs "paid 210") or word order ("prefers email over phone" vs "phone
            #    over email": cosine 0.98), so a merge also needs the same numbers and mostly the
            #    same words in the same order: merging is for one note restated, not for a new fact.
            best, best_sim = None, -1.0
            if i in nearest and nearest[i]["similarity"] is not None:
                cand = existing(nearest[i])
                if live(cand):
                    best, best_sim = cand, float(nearest[i]["similarity"])
            for p in rows.values():
                if p.new and live(p) and p.vector is not None and p.row["subject"] == item.subject \
                        and p.row["kind"] == item.kind.value:
                    sim = float(np.dot(p.vector, vec))
                    if sim > best_sim:
                        best, best_sim = p, sim
            if best is not None and best_sim >= self.merge_threshold \
                    and _numbers(best.row["text"]) == _numbers(item.text) \
                    and _same_wording(best.row["text"], item.text):
                merge(best, item)
                outcomes.append((best.row["id"], "merged"))
                continue
            # 3. Something new.
            p = self._new_row(new_ids[i], item, vec, version=1, supersedes=None, refs=[])
            rows[p.row["id"]] = p
            outcomes.append((p.row["id"], "inserted"))
        return list(rows.values()), outcomes

    def _new_row(self, id_: int, item: MemoryIn, vec: np.ndarray, *, version: int, supersedes: int | None,
                 refs: list[str]) -> _Pending:
        prov: dict[str, Any] = item.provenance.model_dump(exclude_none=True)
        all_refs = [r for r in refs if r != item.ref] + ([item.ref] if item.ref else [])
        prov["refs"] = ([item.ref] if item.ref else []) + [r for r in all_refs if r != item.ref]
        created = item.at or self._now()
        keep_for = self.retention.get(item.kind)
        retention = item.retention_until
        if retention is None and keep_for is not None:
            # With neither `at` nor a clock, the row takes the database's now(); this process's
            # clock is close enough to date a retention measured in days.
            retention = (created or datetime.now(UTC)) + keep_for
        row = {
            "id": id_, "ref": item.ref, "text": item.text, "kind": item.kind.value, "subject": item.subject,
            "provenance": prov, "created_at": created, "version": version, "supersedes": supersedes,
            "current": True, "forgotten_at": None, "retention_until": retention,
        }
        return _Pending(row, vec, new=True)

    # --- reading -------------------------------------------------------------------------------

    def recall(
        self,
        question: str,
        *,
        subject: str | None = None,
        kind: Kind | str | None = None,
        k: int = 10,
        include_history: bool = False,
        token_budget: int | None = None,
    ) -> list[Recalled]:
        """Hybrid retrieval, best first: vector similarity and full-text rank fused by reciprocal rank.

        Current, non-forgotten memories only unless `include_history`. With `token_budget`, stops
        before the first memory that would overflow it. Marks what it returns as used.
        """
        vec = self.embedder.embed([question])[0]
        kind_value = Kind(kind).value if kind else None
        n = max(4 * k, 40)
        filters: list[sql.Composable] = []
        if not include_history:
            filters.append(sql.SQL("AND current"))
        if subject is not None:
            filters.append(sql.SQL("AND subject = %(subject)s"))
        if kind_value is not None:
            filters.append(sql.SQL("AND kind = %(kind)s"))
        where = sql.SQL(" ").join(filters)
        params = {"q": vec, "n": n, "subject": subject, "kind": kind_value, "question": question,
                  "max_df": self.keyword_max_df, "df_cap": self.keyword_df_cap}
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            use_ann = subject is None and not include_history
            if use_ann:
                cur.execute(SET_EF_SEARCH, (str(max(self._ef_search(cur), n)),))
                ann_filters = sql.SQL("AND kind = %(kind)s") if kind_value else sql.SQL("")
                vector_rows = cur.execute(sql.SQL(VECTOR_ANN).format(filters=ann_filters), params).fetchall()
                if kind_value and len(vector_rows) < n:
                    # A rare kind can be filtered out of the ANN candidates; its rows are few, scan them.
                    vector_rows = cur.execute(sql.SQL(VECTOR_EXACT).format(filters=where), params).fetchall()
            else:
                vector_rows = cur.execute(sql.SQL(VECTOR_EXACT).format(filters=where), params).fetchall()
            text_rows = cur.execute(sql.SQL(TEXT_LEG).format(filters=where), params).fetchall()

            fused: dict[int, dict[str, Any]] = {}
            for rank, r in enumerate(vector_rows, start=1):
                fused[r["id"]] = {"score": 1 / (self.rrf_k + rank), "vector_rank": rank,
                                  "similarity": float(r["similarity"]), "text_rank": None}
            for rank, r in enumerate(text_rows, start=1):
                f = fused.setdefault(r["id"], {"score": 0.0, "vector_rank": None, "similarity": None})
                f["score"] += 1 / (self.rrf_k + rank)
                f["text_rank"] = rank
            top = sorted(fused.items(), key=lambda kv: (-kv[1]["score"], -kv[0]))[:k]
            rows = {r["id"]: r for r in cur.execute(SELECT_BY_IDS, ([i for i, _ in top],)).fetchall()}
            results: list[Recalled] = []
            used = 0
            for mid, f in top:
                rec = _record(rows[mid])
                if token_budget is not None:
                    used += estimate_tokens(rec.text)
                    if used > token_budget:
                        break
                results.append(Recalled(
                    id=rec.id, ref=rec.ref, refs=rec.refs, text=rec.text, kind=rec.kind, subject=rec.subject,
                    score=f["score"], similarity=f["similarity"], vector_rank=f["vector_rank"],
                    text_rank=f["text_rank"], source=rec.provenance.get("source"), provenance=rec.provenance,
                    created_at=rec.created_at, version=rec.version, current=rec.current,
                ))
            if results:
                cur.execute(TOUCH, (self._now() or datetime.now(UTC), [r.id for r in results]))
        return results

    def vector_search(self, question: str, *, k: int = 10, exact: bool = False) -> list[tuple[int, float]]:
        """Vector search alone over current memories, (id, similarity) best first; for comparisons."""
        vec = self.embedder.embed([question])[0]
        template = VECTOR_EXACT if exact else VECTOR_ANN
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(SET_EF_SEARCH, (str(max(self._ef_search(cur), k)),))
            query = sql.SQL(template).format(filters=sql.SQL("AND current") if exact else sql.SQL(""))
            rows = cur.execute(query, {"q": vec, "n": k}).fetchall()
        return [(r["id"], float(r["similarity"])) for r in rows]

    def get(self, memory_id: int) -> MemoryRecord:
        """One memory, live or not; raises MemoryNotFound if it was never written or was reclaimed."""
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(SELECT_BY_IDS, ([memory_id],)).fetchone()
        if row is None:
            raise MemoryNotFound(memory_id)
        return _record(row)

    def versions(self, memory_id: int) -> list[MemoryRecord]:
        """Every version of the fact `memory_id` belongs to, oldest first; raises MemoryNotFound."""
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(VERSIONS, {"id": memory_id}).fetchall()
        if not rows:
            raise MemoryNotFound(memory_id)
        return [_record(r) for r in rows]

    # --- citations and upkeep ------------------------------------------------------------------

    def cite(self, memory_ids: Sequence[int], *, run_id: int, step: str, at: datetime | None = None) -> int:
        """Record that a run's step cited these memories; idempotent per (memory, run, step).

        Also links the step to its run and to each memory in the metadata index, so `chain()` can
        answer "why?". Returns how many citations were new. Forgotten or missing ids are skipped.
        """
        ids = sorted(set(memory_ids))
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            # The insert's foreign-key check locks each memory row (KEY SHARE) until commit, which
            # is what keeps a concurrent reclaim() (FOR UPDATE SKIP LOCKED) off it.
            fresh = [r["memory_id"] for r in cur.execute(CITE, (run_id, step, at, ids)).fetchall()]
            if fresh:
                cur.execute(BUMP_REFCOUNT, (fresh,))
            node = step_node(run_id, step)
            links_many(conn, [(node, ("run", str(run_id)), PART_OF)]
                       + [(node, ("memory", str(i)), CITES) for i in fresh])
        return len(fresh)

    def forget(self, memory_id: int, *, by: str, at: datetime | None = None,
               conn: psycopg.Connection | None = None) -> list[Forgotten]:
        """Tombstone a memory and every version of it: text redacted, embedding dropped, row kept.

        The caller (the orchestrator) has already had the approval and writes the audit event from
        the returned list, which holds digests, not the forgotten text. Forgetting twice returns [].
        Raises MemoryNotFound for an id that does not exist. With `conn`, runs inside the caller's
        open transaction, so the caller's audit event commits with the tombstone, or neither does.
        """
        when = at or self._now() or datetime.now(UTC)
        if conn is not None:
            return self._forget(conn, memory_id, by=by, when=when)
        with self._conn() as own:
            return self._forget(own, memory_id, by=by, when=when)

    def _forget(self, conn: psycopg.Connection, memory_id: int, *, by: str, when: datetime) -> list[Forgotten]:
        with conn.cursor(row_factory=dict_row) as cur:
            head = cur.execute(SELECT_BY_IDS, ([memory_id],)).fetchone()
            if head is None:
                raise MemoryNotFound(memory_id)
            cur.execute(LOCK_SUBJECT, (head["subject"],))
            chain = cur.execute(VERSIONS, {"id": memory_id}).fetchall()
            rows = [r for r in chain if r["forgotten_at"] is None]
            cur.execute(TOMBSTONE, (REDACTED, when, by, [r["id"] for r in rows]))
        return [
            Forgotten(id=r["id"], ref=r["ref"], subject=r["subject"], kind=r["kind"], version=r["version"],
                      text_sha256=hashlib.sha256(r["text"].encode()).hexdigest(), forgotten_at=when,
                      forgotten_by=by)
            for r in rows
        ]

    def reclaimable(self, now: datetime, *, limit: int = 100) -> list[Reclaimed]:
        """What `reclaim(now)` would remove, without removing it."""
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(PREVIEW_RECLAIM, {"now": now, "limit": limit}).fetchall()
        return [Reclaimed(**r) for r in rows]

    def reclaim(self, now: datetime, *, conn: psycopg.Connection | None = None) -> list[Reclaimed]:
        """Delete memories past retention that nothing cites or links to; returns them for the audit log.

        With `conn`, runs inside the caller's open transaction, so the caller's record of what was
        removed commits with the removal, or neither does.
        """
        if conn is not None:
            return self._reclaim(conn, now)
        with self._conn() as own:
            return self._reclaim(own, now)

    def _reclaim(self, conn: psycopg.Connection, now: datetime) -> list[Reclaimed]:
        with conn.cursor(row_factory=dict_row) as cur:
            removed = [Reclaimed(**r) for r in cur.execute(RECLAIM, {"now": now}).fetchall()]
            if removed:
                cur.execute(DROP_MEMORY_LINKS, {"ids": [str(r.id) for r in removed]})
        return sorted(removed, key=lambda r: r.id)

    def subjects_to_summarise(self, older_than: datetime) -> list[str]:
        """Subjects with current interaction memories older than `older_than` that no summary covers yet."""
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            return [r["subject"] for r in cur.execute(SUBJECTS_TO_SUMMARISE, (older_than,)).fetchall()]

    def stats(self, now: datetime | None = None) -> MemoryStats:
        """Counts by kind and state, size on disk, and what the next reclamation would remove."""
        moment = now or self._now() or datetime.now(UTC)
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(STATS).fetchall()
            size = cur.execute(SIZE_ON_DISK).fetchone()
            preview = cur.execute(PREVIEW_RECLAIM, {"now": moment, "limit": 100}).fetchall()
        return MemoryStats(
            by_kind={r["kind"]: r["live"] for r in rows},
            current=sum(r["live"] for r in rows),
            superseded=sum(r["superseded"] for r in rows),
            tombstoned=sum(r["tombstoned"] for r in rows),
            total=sum(r["total"] for r in rows),
            bytes_on_disk=int(size["bytes"] if size else 0),
            next_reclamation=[Reclaimed(**r) for r in preview],
        )

    def summarise(
        self,
        subject: str,
        *,
        older_than: datetime,
        summariser: Callable[[list[str]], str],
        provenance: Provenance | Mapping[str, Any] | None = None,
    ) -> MemoryRecord | None:
        """Compact a subject's interaction memories older than `older_than` into one summary memory.

        The summary links to each source (`summarises`); the sources stay until their retention
        ends, and a source already summarised is not summarised again. Returns None when there is
        nothing to compact. `summariser` is called outside any transaction (it may be a model call).
        """
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            sources = [_record(r) for r in cur.execute(UNSUMMARISED, (subject, older_than)).fetchall()]
        if not sources:
            return None
        text = summariser([s.text for s in sources]).strip()
        if not text:
            return None
        given = provenance.model_dump() if isinstance(provenance, Provenance) else dict(provenance or {})
        prov = Provenance(**{**given, "source": given.get("source") or "summary",
                             "summarises": [s.id for s in sources]})
        item = MemoryIn(text=text, kind=Kind.SUMMARY, subject=subject, provenance=prov,
                        ref=f"summary:{subject}:{sources[-1].id}", at=self._now())
        # The links are written in the summary's transaction: a summary is never without its sources.
        return self._write_batch([item], 1, also=lambda ids: [
            (("memory", str(ids[0])), ("memory", str(s.id)), "summarises") for s in sources
        ])[0]
