"""Idempotency records: one row per outside action key, so an action done once is never done again."""
from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel

CLAIM = """
INSERT INTO connector_actions (key, connector, action, state, request, attempts)
VALUES (%(key)s, %(connector)s, %(action)s, 'pending', %(request)s, 1)
ON CONFLICT (key) DO UPDATE
    SET attempts = connector_actions.attempts + 1, updated_at = now()
    WHERE connector_actions.state = 'pending'
RETURNING state
"""
READ = "SELECT action, state, result FROM connector_actions WHERE key = %s"
FINISH = """
UPDATE connector_actions SET state = %(state)s, result = %(result)s, updated_at = now() WHERE key = %(key)s
"""


class ActionRecord(BaseModel):
    key: str
    action: str
    state: str
    result: dict[str, Any] | None = None


def claim(conn: Connection, *, key: str, connector: str, action: str, request: dict[str, Any]) -> ActionRecord | None:
    """Claim `key` for an attempt. Returns None when the caller should act, or the record of a finished action.

    A `pending` record means an earlier attempt started and its outcome is unknown (its worker died):
    the caller acts again, which is why backends must make a repeated attempt harmless (a stable
    Message-ID, a ledger key that admits one success).
    """
    row = conn.execute(
        CLAIM, {"key": key, "connector": connector, "action": action, "request": Jsonb(request)}
    ).fetchone()
    if row is not None:
        return None
    record = lookup(conn, key)
    assert record is not None, "a conflicting key has a row"
    return record


def finish(conn: Connection, *, key: str, result: dict[str, Any], state: str = "done") -> None:
    conn.execute(FINISH, {"key": key, "state": state, "result": Jsonb(result)})


def lookup(conn: Connection, key: str) -> ActionRecord | None:
    row = conn.execute(READ, (key,)).fetchone()
    if row is None:
        return None
    action, state, result = (row["action"], row["state"], row["result"]) if isinstance(row, dict) else row
    return ActionRecord(key=key, action=action, state=state, result=result)
