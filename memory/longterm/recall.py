"""Hybrid recall: the vector leg (HNSW, with ef_search sized to the index), the keyword leg, and their fusion."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psycopg
from psycopg import sql

from memory.longterm.fusion import Fused, fitting, fuse
from memory.longterm.records import MemoryRecord, Recalled, to_record
from memory.longterm.store import rows_by_id

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


def ef_search_for(live_memories: int) -> int:
    """ef_search for an index of `live_memories` rows (pure)."""
    return next((ef for upto, ef in EF_SEARCH_BY_SIZE if live_memories <= upto), EF_SEARCH_BEYOND)


@dataclass
class IndexSizedEfSearch:
    """ef_search for the live index's size, re-read from the catalogue every few minutes."""

    clock: Callable[[], float] = time.monotonic
    # (clock reading, ef_search) of the last size check.
    _sized: tuple[float, int] | None = field(default=None, init=False)

    def __call__(self, cur: psycopg.Cursor) -> int:
        now = self.clock()
        if self._sized is None or now - self._sized[0] > EF_SEARCH_RECHECK_SECONDS:
            row = cur.execute(INDEX_SIZE).fetchone()
            live = int(row["reltuples"]) if row and row["reltuples"] is not None else 0
            self._sized = (now, ef_search_for(live))
        return self._sized[1]


def hybrid_recall(
    cur: psycopg.Cursor,
    question: str,
    vec: np.ndarray,
    *,
    subject: str | None,
    kind: str | None,
    k: int,
    include_history: bool,
    token_budget: int | None,
    ef_search: Callable[[psycopg.Cursor], int],
    rrf_k: int,
    keyword_max_df: float,
    keyword_df_cap: int,
    used_at: Callable[[], datetime],
) -> list[Recalled]:
    """Both legs, fused, cut to the token budget, and marked used at `used_at()` (a dict_row cursor)."""
    n = max(4 * k, 40)
    filters: list[sql.Composable] = []
    if not include_history:
        filters.append(sql.SQL("AND current"))
    if subject is not None:
        filters.append(sql.SQL("AND subject = %(subject)s"))
    if kind is not None:
        filters.append(sql.SQL("AND kind = %(kind)s"))
    where = sql.SQL(" ").join(filters)
    params = {"q": vec, "n": n, "subject": subject, "kind": kind, "question": question,
              "max_df": keyword_max_df, "df_cap": keyword_df_cap}
    if subject is None and not include_history:
        cur.execute(SET_EF_SEARCH, (str(max(ef_search(cur), n)),))
        ann_filters = sql.SQL("AND kind = %(kind)s") if kind else sql.SQL("")
        vector_rows = cur.execute(sql.SQL(VECTOR_ANN).format(filters=ann_filters), params).fetchall()
        if kind and len(vector_rows) < n:
            # A rare kind can be filtered out of the ANN candidates; its rows are few, scan them.
            vector_rows = cur.execute(sql.SQL(VECTOR_EXACT).format(filters=where), params).fetchall()
    else:
        vector_rows = cur.execute(sql.SQL(VECTOR_EXACT).format(filters=where), params).fetchall()
    text_rows = cur.execute(sql.SQL(TEXT_LEG).format(filters=where), params).fetchall()

    top = fuse([(r["id"], r["similarity"]) for r in vector_rows], [r["id"] for r in text_rows], rrf_k=rrf_k, k=k)
    rows = rows_by_id(cur, [f.id for f in top])
    kept = top[:fitting([rows[f.id]["text"] for f in top], token_budget)]
    results = [_recalled(to_record(rows[f.id]), f) for f in kept]
    if results:
        cur.execute(TOUCH, (used_at(), [r.id for r in results]))
    return results


def _recalled(rec: MemoryRecord, f: Fused) -> Recalled:
    return Recalled(
        id=rec.id, ref=rec.ref, refs=rec.refs, text=rec.text, kind=rec.kind, subject=rec.subject,
        score=f.score, similarity=f.similarity, vector_rank=f.vector_rank, text_rank=f.text_rank,
        source=rec.provenance.get("source"), provenance=rec.provenance, created_at=rec.created_at,
        version=rec.version, current=rec.current,
    )


def vector_only(
    cur: psycopg.Cursor, vec: np.ndarray, *, k: int, exact: bool, ef_search: Callable[[psycopg.Cursor], int]
) -> list[tuple[int, float]]:
    """The vector leg alone over current memories, (id, similarity) best first (a dict_row cursor)."""
    cur.execute(SET_EF_SEARCH, (str(max(ef_search(cur), k)),))
    template = VECTOR_EXACT if exact else VECTOR_ANN
    query = sql.SQL(template).format(filters=sql.SQL("AND current") if exact else sql.SQL(""))
    rows = cur.execute(query, {"q": vec, "n": k}).fetchall()
    return [(r["id"], float(r["similarity"])) for r in rows]
