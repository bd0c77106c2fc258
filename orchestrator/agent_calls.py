"""Agent calls: each model call stored with its step, tier, model, prompt hash, output and usage.

A re-run of a step reuses a finished call with the same prompt hash instead of calling the model
again; replaying a run from this record stays possible.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel


class AgentCall(BaseModel):
    id: int
    run_id: int
    step: str
    tier: str
    model: str
    prompt_hash: str
    output: dict[str, Any]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    created_at: datetime


def find(conn: Connection, *, run_id: int, step: str, prompt_hash: str) -> AgentCall | None:
    row = conn.execute(
        "SELECT * FROM agent_calls WHERE run_id = %s AND step = %s AND prompt_hash = %s",
        (run_id, step, prompt_hash),
    ).fetchone()
    return AgentCall.model_validate(row) if row else None


def record(
    conn: Connection, *, run_id: int, step: str, tier: str, model: str, prompt_hash: str, output: dict[str, Any],
    input_tokens: int, output_tokens: int, cost_usd: float,
) -> AgentCall:
    row = conn.execute(
        "INSERT INTO agent_calls (run_id, step, tier, model, prompt_hash, output, input_tokens, output_tokens,"
        " cost_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (run_id, step, prompt_hash) DO UPDATE SET run_id = excluded.run_id RETURNING *",
        (run_id, step, tier, model, prompt_hash, Jsonb(output), input_tokens, output_tokens, cost_usd),
    ).fetchone()
    return AgentCall.model_validate(row)


def for_run(conn: Connection, run_id: int) -> list[AgentCall]:
    rows = conn.execute("SELECT * FROM agent_calls WHERE run_id = %s ORDER BY id", (run_id,)).fetchall()
    return [AgentCall.model_validate(r) for r in rows]
