"""LongTermMemory: the facade over write, recall and lifecycle, holding the pool, embedder, clock and settings."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from memory.longterm import lifecycle
from memory.longterm.recall import IndexSizedEfSearch, hybrid_recall, vector_only
from memory.longterm.records import (
    DEFAULT_RETENTION,
    Forgotten,
    Kind,
    MemoryIn,
    MemoryRecord,
    MemoryStats,
    Provenance,
    Recalled,
    Reclaimed,
)
from memory.longterm.store import transaction
from memory.longterm.write import ExtraLinks, write_batch


class Embedder(Protocol):
    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


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
        # restated note at 0.97; it scores some different facts as high (see merge_plan.is_near_duplicate).
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
        self._sized = IndexSizedEfSearch()
        self.rrf_k = rrf_k
        self.keyword_max_df = keyword_max_df
        self.keyword_df_cap = keyword_df_cap
        self.retention = {**DEFAULT_RETENTION, **(retention or {})}
        self._clock = clock

    # --- connections ---------------------------------------------------------------------------

    @contextmanager
    def _conn(self, caller: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        """A transaction of our own, or a savepoint inside the caller's open one."""
        with transaction(self.pool, caller) as conn:
            yield conn

    def _now(self) -> datetime | None:
        return self._clock() if self._clock else None

    def _ef_search(self, cur: psycopg.Cursor) -> int:
        """The configured ef_search, or one for the index's size, re-read every few minutes."""
        return self.ef_search if self.ef_search is not None else self._sized(cur)

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
        also: ExtraLinks | None = None,
        caller: psycopg.Connection | None = None,
    ) -> list[MemoryRecord]:
        # Embedding first, outside the transaction: the model is the slow part, and no connection or
        # subject lock should be held while it runs.
        vectors = self.embedder.embed([i.text for i in items], batch_size=min(batch_size, 64))
        with self._conn(caller) as conn:
            return write_batch(conn, items, vectors, merge_threshold=self.merge_threshold, retention=self.retention,
                               now=self._now(), wall_now=datetime.now(UTC), also=also)

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
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            return hybrid_recall(
                cur, question, vec, subject=subject, kind=Kind(kind).value if kind else None, k=k,
                include_history=include_history, token_budget=token_budget, ef_search=self._ef_search,
                rrf_k=self.rrf_k, keyword_max_df=self.keyword_max_df, keyword_df_cap=self.keyword_df_cap,
                used_at=lambda: self._now() or datetime.now(UTC),
            )

    def vector_search(self, question: str, *, k: int = 10, exact: bool = False) -> list[tuple[int, float]]:
        """Vector search alone over current memories, (id, similarity) best first; for comparisons."""
        vec = self.embedder.embed([question])[0]
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            return vector_only(cur, vec, k=k, exact=exact, ef_search=self._ef_search)

    def get(self, memory_id: int) -> MemoryRecord:
        """One memory, live or not; raises MemoryNotFound if it was never written or was reclaimed."""
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            return lifecycle.get(cur, memory_id)

    def versions(self, memory_id: int) -> list[MemoryRecord]:
        """Every version of the fact `memory_id` belongs to, oldest first; raises MemoryNotFound."""
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            return lifecycle.versions(cur, memory_id)

    # --- citations and upkeep ------------------------------------------------------------------

    def cite(self, memory_ids: Sequence[int], *, run_id: int, step: str, step_key: str,
             at: datetime | None = None) -> int:
        """Record that a run's step cited these memories; idempotent per (memory, run, step).

        Also links the step to its run and to each memory in the metadata index, so `chain()` can
        answer "why?". Returns how many citations were new. Forgotten or missing ids are skipped.
        """
        with self._conn() as conn:
            return lifecycle.cite(conn, sorted(set(memory_ids)), run_id=run_id, step=step, step_key=step_key, at=at)

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
            return lifecycle.forget(conn, memory_id, by=by, when=when)
        with self._conn() as own:
            return lifecycle.forget(own, memory_id, by=by, when=when)

    def reclaimable(self, now: datetime, *, limit: int = 100) -> list[Reclaimed]:
        """What `reclaim(now)` would remove, without removing it."""
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            return lifecycle.reclaimable(cur, now, limit=limit)

    def reclaim(self, now: datetime, *, conn: psycopg.Connection | None = None) -> list[Reclaimed]:
        """Delete memories past retention that nothing cites or links to; returns them for the audit log.

        With `conn`, runs inside the caller's open transaction, so the caller's record of what was
        removed commits with the removal, or neither does.
        """
        if conn is not None:
            return lifecycle.reclaim(conn, now)
        with self._conn() as own:
            return lifecycle.reclaim(own, now)

    def subjects_to_summarise(self, older_than: datetime) -> list[str]:
        """Subjects with current interaction memories older than `older_than` that no summary covers yet."""
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            return lifecycle.subjects_to_summarise(cur, older_than)

    def stats(self, now: datetime | None = None) -> MemoryStats:
        """Counts by kind and state, size on disk, and what the next reclamation would remove."""
        moment = now or self._now() or datetime.now(UTC)
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            return lifecycle.stats(cur, moment)

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
            sources = lifecycle.unsummarised(cur, subject, older_than)
        if not sources:
            return None
        text = summariser([s.text for s in sources]).strip()
        if not text:
            return None
        item = lifecycle.summary_of(subject, sources, text, provenance=provenance, at=self._now())
        # The links are written in the summary's transaction: a summary is never without its sources.
        return self._write_batch([item], 1, also=lambda ids: lifecycle.summary_links(ids[0], sources))[0]
