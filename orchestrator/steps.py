"""Steps: the steps table, one row per step of a run, with its state, attempts and idempotency key (see `keys`)."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from orchestrator.keys import step_key


class StepState(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATED = "compensated"


class StepRecord(BaseModel):
    run_id: int
    name: str
    position: int
    state: StepState
    attempts: int
    idempotency_key: str
    result: dict[str, Any] | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


START = """
INSERT INTO steps (run_id, name, position, state, attempts, idempotency_key, started_at)
VALUES (%(run_id)s, %(name)s, %(position)s, 'running', 1, %(key)s, now())
ON CONFLICT (run_id, name) DO UPDATE SET state = 'running', error = NULL, started_at = now(),
    -- Coming back from an approval is the same attempt going on, not a retry.
    attempts = steps.attempts + CASE WHEN steps.state = 'waiting' THEN 0 ELSE 1 END
RETURNING *
"""
FINISH = """
UPDATE steps SET state = %(state)s, result = %(result)s, error = %(error)s, finished_at = now()
WHERE run_id = %(run_id)s AND name = %(name)s RETURNING *
"""


def start(conn: Connection, *, run_id: int, name: str, position: int) -> StepRecord:
    row = conn.execute(
        START, {"run_id": run_id, "name": name, "position": position, "key": step_key(run_id, name)}
    ).fetchone()
    return StepRecord.model_validate(row)


def finish(
    conn: Connection, *, run_id: int, name: str, state: StepState, result: dict[str, Any] | None = None,
    error: str | None = None,
) -> StepRecord:
    row = conn.execute(
        FINISH, {"run_id": run_id, "name": name, "state": state,
                 "result": Jsonb(result) if result is not None else None, "error": error},
    ).fetchone()
    return StepRecord.model_validate(row)


def records(conn: Connection, run_id: int) -> dict[str, StepRecord]:
    rows = conn.execute("SELECT * FROM steps WHERE run_id = %s ORDER BY position", (run_id,)).fetchall()
    return {row["name"]: StepRecord.model_validate(row) for row in rows}
