"""The metadata index: typed links between intents, runs, steps, approvals, memories and audit events.

A link reads "from <relation> to", and the node types are plain strings so that this layer knows
nothing of the orchestrator. The conventions `chain()` relies on:

- ("step", "run:12:send_emails") part_of ("run", "12");  ("run", "12") part_of ("intent", "7")
- ("step", …) cites ("memory", "42")            — written by `LongTermMemory.cite`
- ("approval", "ap_1") approves ("step", …);  ("audit_event", "99") records (any node)
- ("memory", "43") supersedes / summarises ("memory", "42");  ("memory", …) learned_in ("run", …)
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from memory.errors import MemoryNotFound

PART_OF = "part_of"
CITES = "cites"

INSERT_LINK = """
INSERT INTO memory_links (from_type, from_id, to_type, to_id, relation, created_at)
VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()))
ON CONFLICT DO NOTHING
"""
# FOR KEY SHARE: a link to a memory must not land after reclamation deleted it; reclamation takes
# FOR UPDATE ... SKIP LOCKED on the same row, so it passes over a memory being linked right now.
LOCK_MEMORY = "SELECT id FROM memories WHERE id = %s FOR KEY SHARE"
LINKS_FROM = """
SELECT from_type, from_id, to_type, to_id, relation, created_at
FROM memory_links WHERE from_type = %s AND from_id = %s ORDER BY created_at, to_type, to_id
"""
LINKS_TO = """
SELECT from_type, from_id, to_type, to_id, relation, created_at
FROM memory_links WHERE to_type = %s AND to_id = %s ORDER BY created_at, from_type, from_id
"""
# Memories are the one node type this layer can describe itself.
MEMORY_SUMMARY = """
SELECT id, ref, kind, subject, text, version, current, forgotten_at FROM memories WHERE id = ANY(%s)
"""

Node = tuple[str, str]


class Link(BaseModel):
    from_type: str
    from_id: str
    to_type: str
    to_id: str
    relation: str
    created_at: datetime


class ChainNode(BaseModel):
    type: str
    id: str
    # How this node joined the chain: "start", "lineage" (part_of upwards) or the link relation.
    via: str
    detail: dict[str, Any] | None = None


class Chain(BaseModel):
    """Everything the index knows about why an action happened, grouped by node type."""

    start: ChainNode
    lineage: list[ChainNode]
    nodes: list[ChainNode]
    links: list[Link]

    def of_type(self, type_: str) -> list[ChainNode]:
        return [n for n in self.nodes if n.type == type_]

    def first(self, type_: str) -> ChainNode | None:
        found = self.of_type(type_)
        return found[0] if found else None


def step_node(step_key: str) -> Node:
    """The index's name for a run's step: ("step", its idempotency key). The key is built by the orchestrator
    (`orchestrator.keys.step_key`, `run:<id>:<name>`), its one owner; the index only carries it."""
    return ("step", step_key)


@contextmanager
def _connection(conn_or_pool: psycopg.Connection | ConnectionPool) -> Iterator[psycopg.Connection]:
    if isinstance(conn_or_pool, ConnectionPool):
        with conn_or_pool.connection() as conn:
            yield conn
    else:
        yield conn_or_pool


def _node(value: tuple[str, Any]) -> Node:
    return (str(value[0]), str(value[1]))


def link(
    conn_or_pool: psycopg.Connection | ConnectionPool,
    from_: tuple[str, Any],
    to: tuple[str, Any],
    relation: str,
    *,
    at: datetime | None = None,
) -> None:
    """Record that `from_` <relation> `to`; idempotent, so a retried step may call it again.

    Pass the caller's connection to make the link part of its transaction (the orchestrator links a
    step to its run in the same transaction as the step's state change). Raises MemoryNotFound when
    either end is a memory that no longer exists.
    """
    (ft, fid), (tt, tid) = _node(from_), _node(to)
    with _connection(conn_or_pool) as conn:
        for type_, id_ in ((ft, fid), (tt, tid)):
            if type_ == "memory" and conn.execute(LOCK_MEMORY, (int(id_),)).fetchone() is None:
                raise MemoryNotFound(int(id_))
        conn.execute(INSERT_LINK, (ft, fid, tt, tid, relation, at))


def links_many(conn: psycopg.Connection, rows: list[tuple[Node, Node, str]]) -> None:
    """Insert links in the caller's transaction, unchecked: the caller holds the memory rows."""
    if rows:
        with conn.cursor() as cur:
            cur.executemany(INSERT_LINK, [(f[0], f[1], t[0], t[1], rel, None) for f, t, rel in rows])


def _as_link(row: Any) -> Link:
    if isinstance(row, dict):
        return Link(**row)
    keys = ("from_type", "from_id", "to_type", "to_id", "relation", "created_at")
    return Link(**dict(zip(keys, row, strict=True)))


def chain(
    conn_or_pool: psycopg.Connection | ConnectionPool, type_: str, id_: Any, *, max_depth: int = 6
) -> Chain:
    """Answer "why did this happen?" for one node (an action, an outbox or connector key, …).

    Walks `part_of` links upwards from the start (a connector key's step, the step's run, the run's
    intent), then gathers, for the start and every ancestor, what points at them (approvals, audit
    events) and what they point at (the memories a step cited). Evidence nodes get one more hop of what
    points at them, so the audit event of an approval's decision is in the chain too. Sibling steps
    of the same run are left out: they are not why this action happened.
    """
    start = ChainNode(type=type_, id=str(id_), via="start")
    seen: dict[Node, ChainNode] = {(start.type, start.id): start}
    links: dict[tuple[str, str, str, str, str], Link] = {}
    with _connection(conn_or_pool) as conn:

        def out(node: Node) -> list[Link]:
            return [_as_link(r) for r in conn.execute(LINKS_FROM, node).fetchall()]

        def inc(node: Node) -> list[Link]:
            return [_as_link(r) for r in conn.execute(LINKS_TO, node).fetchall()]

        def keep(lk: Link) -> None:
            links[(lk.from_type, lk.from_id, lk.to_type, lk.to_id, lk.relation)] = lk

        def add(node: Node, via: str) -> bool:
            if node in seen:
                return False
            seen[node] = ChainNode(type=node[0], id=node[1], via=via)
            return True

        lineage: list[ChainNode] = []
        frontier: Node = (start.type, start.id)
        for _ in range(max_depth):
            parents = [lk for lk in out(frontier) if lk.relation == PART_OF]
            if not parents:
                break
            keep(parents[0])
            parent = (parents[0].to_type, parents[0].to_id)
            if not add(parent, "lineage"):
                break
            lineage.append(seen[parent])
            frontier = parent

        evidence: list[Node] = []
        for node in [(start.type, start.id), *[(n.type, n.id) for n in lineage]]:
            for lk in inc(node):
                if lk.relation == PART_OF:
                    continue  # siblings and children, not causes
                keep(lk)
                if add((lk.from_type, lk.from_id), lk.relation):
                    evidence.append((lk.from_type, lk.from_id))
        for node in [(start.type, start.id), *[(n.type, n.id) for n in lineage]]:
            for lk in out(node):
                if lk.relation == PART_OF:
                    continue
                keep(lk)
                add((lk.to_type, lk.to_id), lk.relation)
        for node in evidence:
            for lk in inc(node):
                if lk.relation != PART_OF:
                    keep(lk)
                    add((lk.from_type, lk.from_id), lk.relation)

        memory_ids = [int(i) for t, i in seen if t == "memory" and i.isdigit()]
        if memory_ids:
            for row in conn.execute(MEMORY_SUMMARY, (memory_ids,)).fetchall():
                r = row if isinstance(row, dict) else dict(zip(
                    ("id", "ref", "kind", "subject", "text", "version", "current", "forgotten_at"), row,
                    strict=True))
                seen[("memory", str(r["id"]))].detail = r
    nodes = [n for key, n in seen.items() if key != (start.type, start.id)]
    return Chain(start=start, lineage=lineage, nodes=nodes, links=list(links.values()))
