"""What every long-term memory job shares with the database: transactions, columns, reads by id, subject locks."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

COLUMNS = """id, ref, text, kind, subject, provenance, created_at, last_used_at, refcount, version,
    supersedes, current, forgotten_at, forgotten_by, retention_until"""
SELECT_BY_IDS = f"SELECT {COLUMNS} FROM memories WHERE id = ANY(%s)"
# Merge-on-write and versioning read-then-write per subject: two writers on the same subject would
# both miss each other's row and insert twins. A transaction-scoped advisory lock on the subject
# serialises them (taken in sorted order across a batch, so two batches cannot deadlock). forget()
# takes it too, so a write cannot supersede a version while its chain is being tombstoned.
LOCK_SUBJECT = "SELECT pg_advisory_xact_lock(7242005, hashtext(%s))"


def prefixed_columns(alias: str) -> str:
    """COLUMNS qualified by a table alias, for queries that join `memories` to something else."""
    return ", ".join(f"{alias}.{c.strip()}" for c in COLUMNS.split(","))


@contextmanager
def transaction(pool: ConnectionPool, caller: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
    """A transaction of our own, or a savepoint inside the caller's open one.

    The pool is shared with the rest of opsos, so pgvector's type adapters are registered on a
    connection the first time memory takes it (unless the pool's `configure` already did).
    """
    with nullcontext(caller) if caller is not None else pool.connection() as conn:
        if conn.adapters.types.get("vector") is None:
            register_vector(conn)
        with conn.transaction():
            yield conn


def lock_subjects(cur: psycopg.Cursor, subjects: Iterable[str]) -> None:
    """Take the subject locks for this transaction, in sorted order (see LOCK_SUBJECT)."""
    for subject in sorted(set(subjects)):
        cur.execute(LOCK_SUBJECT, (subject,))


def rows_by_id(cur: psycopg.Cursor, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The `memories` rows with these ids (a dict_row cursor), by id; missing ids are absent."""
    return {r["id"]: r for r in cur.execute(SELECT_BY_IDS, (list(ids),)).fetchall()}
