"""The audit log: append-only, each event hash-chained to the one before, refused UPDATE/DELETE by PostgreSQL.

`hash = sha256(prev_hash + canonical event)`, where the canonical event is sorted-key JSON of the
row's own fields, so verification needs nothing but the table. The hash is unkeyed: whoever can write
the table can recompute it, which is why `anchors` signs the head outside the database.
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel

GENESIS = "0" * 64

# Appends are serialised by this transaction-level lock: the chain needs each event to see the
# previous one's hash, and the lock is released at commit, so a rolled-back transaction leaves
# neither its event nor a gap that a later event chained onto.
LOCK_CHAIN = "SELECT pg_advisory_xact_lock(7242002)"
LAST = "SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1"
INSERT = """
INSERT INTO audit_events (id, at, actor, kind, intent_id, run_id, payload, prev_hash, hash)
VALUES (%(id)s, %(at)s, %(actor)s, %(kind)s, %(intent_id)s, %(run_id)s, %(payload)s, %(prev_hash)s, %(hash)s)
"""


class AuditEvent(BaseModel):
    id: int
    at: datetime
    actor: str
    kind: str
    intent_id: int | None = None
    run_id: int | None = None
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class ChainReport(BaseModel):
    ok: bool
    checked: int
    first_broken_id: int | None = None
    problem: str = ""
    # The last event that verified and its hash: the head when `ok` (what an anchor signs).
    head_id: int | None = None
    head_hash: str | None = None


def canonical(
    *, id: int, at: datetime, actor: str, kind: str, intent_id: int | None, run_id: int | None, payload: dict
) -> str:
    return json.dumps(
        {
            "id": id,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "kind": kind,
            "intent_id": intent_id,
            "run_id": run_id,
            "payload": payload,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )


def chain_hash(prev_hash: str, canonical_event: str) -> str:
    return hashlib.sha256((prev_hash + canonical_event).encode()).hexdigest()


def append(
    conn: Connection,
    *,
    actor: str,
    kind: str,
    intent_id: int | None = None,
    run_id: int | None = None,
    payload: dict[str, Any] | None = None,
    at: datetime,
) -> AuditEvent:
    """Append one event inside the caller's transaction (the state change and its event commit together).

    `at` is the caller's injected clock, never the wall clock read here: replay and tests compare these times.
    """
    # Round-trip the payload through JSON first so the hash covers exactly what jsonb will return.
    body = json.loads(json.dumps(payload or {}, default=str))
    moment = at
    conn.execute(LOCK_CHAIN)
    last = conn.execute(LAST).fetchone()
    prev_hash = last["hash"] if last else GENESIS
    new_id = conn.execute("SELECT nextval('audit_events_id_seq') AS id").fetchone()["id"]
    fields = {"id": new_id, "at": moment, "actor": actor, "kind": kind, "intent_id": intent_id, "run_id": run_id}
    digest = chain_hash(prev_hash, canonical(**fields, payload=body))
    conn.execute(INSERT, {**fields, "payload": Jsonb(body), "prev_hash": prev_hash, "hash": digest})
    return AuditEvent(**fields, payload=body, prev_hash=prev_hash, hash=digest)


def verify(conn: Connection, *, after: int = 0, after_hash: str = GENESIS, batch: int = 5000) -> ChainReport:
    """Recompute the chain after event `after` (whose hash is `after_hash`; from the first event by default) to the
    head; name the first event whose link or content does not match. `checked` counts the events re-hashed."""
    prev_hash = after_hash
    checked = 0
    last_id = after

    def report(broken: int | None = None, problem: str = "") -> ChainReport:
        return ChainReport(ok=broken is None, checked=checked, first_broken_id=broken, problem=problem,
                           head_id=last_id or None, head_hash=prev_hash if last_id else None)

    while True:
        rows = conn.execute(
            "SELECT * FROM audit_events WHERE id > %s ORDER BY id LIMIT %s", (last_id, batch)
        ).fetchall()
        if not rows:
            return report()
        for row in rows:
            if row["prev_hash"] != prev_hash:
                return report(row["id"], "its prev_hash is not the hash of the event before it"
                                         " (an event was removed or reordered)")
            expected = chain_hash(
                prev_hash,
                canonical(
                    id=row["id"], at=row["at"], actor=row["actor"], kind=row["kind"],
                    intent_id=row["intent_id"], run_id=row["run_id"], payload=row["payload"],
                ),
            )
            if row["hash"] != expected:
                return report(row["id"], "its content does not match its hash (the event was altered)")
            prev_hash = row["hash"]
            checked += 1
            last_id = row["id"]


def events(conn: Connection, *, run_id: int | None = None, intent_id: int | None = None) -> list[AuditEvent]:
    rows = conn.execute(
        "SELECT * FROM audit_events WHERE (%(r)s::bigint IS NULL OR run_id = %(r)s)"
        " AND (%(i)s::bigint IS NULL OR intent_id = %(i)s) ORDER BY id",
        {"r": run_id, "i": intent_id},
    ).fetchall()
    return [AuditEvent.model_validate(row) for row in rows]
