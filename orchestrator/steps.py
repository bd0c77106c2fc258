"""Steps: what a workflow is made of, the context a step runs in, and the steps table.

A step's idempotency key is `run:<id>:<step>` and stays the same across retries and re-runs; the
actions it takes on outside systems extend that key (`run:7:send_emails:c-104`), so a step re-run
after a crash finds its earlier actions done and does not repeat them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from agents import StructuredAgent
from orchestrator import agent_calls, approvals, audit, outbox
from orchestrator.approvals import ApprovalRequest
from orchestrator.intents import Intent
from orchestrator.messages import Message
from orchestrator.policy import Effect
from orchestrator.runs import Run
from orchestrator.services import Services


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


class AwaitingApproval(Exception):
    """Raised by a step whose action needs an approval that has not been given."""

    def __init__(self, *, digest: str, ask: ApprovalRequest) -> None:
        super().__init__(ask.what)
        self.digest = digest
        self.ask = ask


@dataclass
class StepContext:
    services: Services
    run: Run
    intent: Intent
    step: str
    results: dict[str, dict[str, Any]]

    @property
    def key(self) -> str:
        return f"run:{self.run.id}:{self.step}"

    def action_key(self, *parts: object) -> str:
        return ":".join([self.key, *map(str, parts)])

    def require_approval(self, *, effect: Effect, action: Any, ask: ApprovalRequest) -> approvals.Approval | None:
        """Return when policy lets this exact action run (an approval bound to its digest); else AwaitingApproval."""
        if not self.services.policy.needs_approval(effect):
            return None
        digest = approvals.action_digest(action)
        with self.services.stores.pool.connection() as conn:
            granted = approvals.granted(conn, run_id=self.run.id, step=self.step, digest=digest)
        if granted is None:
            raise AwaitingApproval(digest=digest, ask=ask)
        return granted

    def notify(self, message: Message, *, event: str, payload: dict[str, Any], dedupe: str) -> None:
        """Tell the operator something and record it: outbox row and audit event in one transaction."""
        with self.services.stores.pool.connection() as conn, conn.transaction():
            queued = outbox.post(
                conn, channel=self.intent.channel, conversation=self.intent.conversation, message=message,
                intent_id=self.intent.id, run_id=self.run.id, dedupe_key=f"{self.key}:{dedupe}",
            )
            if queued is not None:
                audit.append(conn, actor="opsos", kind=event, intent_id=self.intent.id, run_id=self.run.id,
                             payload=payload)

    def record(self, event: str, payload: dict[str, Any]) -> None:
        with self.services.stores.pool.connection() as conn, conn.transaction():
            audit.append(conn, actor="opsos", kind=event, intent_id=self.intent.id, run_id=self.run.id,
                         payload=payload)

    def agent(self, agent: StructuredAgent, inputs: dict[str, Any], *, tier: str = "draft") -> dict[str, Any]:
        """Run an agent on a tier, or reuse the stored result of the same prompt from an earlier attempt."""
        prompt_hash = agent.prompt_hash(inputs)
        with self.services.stores.pool.connection() as conn:
            stored = agent_calls.find(conn, run_id=self.run.id, step=self.step, prompt_hash=prompt_hash)
        if stored is not None:
            return stored.output
        result = agent.invoke(self.services.models.tier(tier), inputs)
        with self.services.stores.pool.connection() as conn, conn.transaction():
            call = agent_calls.record(
                conn, run_id=self.run.id, step=self.step, tier=tier, model=result.model, prompt_hash=prompt_hash,
                output=result.output.model_dump(mode="json"), input_tokens=result.input_tokens,
                output_tokens=result.output_tokens, cost_usd=agent_calls.cost_of(
                    result.model, result.input_tokens, result.output_tokens),
            )
            audit.append(conn, actor=f"agent:{agent.name}", kind="agent.called", intent_id=self.intent.id,
                         run_id=self.run.id, payload={"step": self.step, "tier": tier, "model": result.model,
                                                      "prompt_hash": prompt_hash, "call": call.id,
                                                      "tokens": result.input_tokens + result.output_tokens})
        return call.output


StepFn = Callable[[StepContext], dict[str, Any]]
CompensateFn = Callable[[StepContext, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    name: str
    effect: Effect
    run: StepFn
    compensate: CompensateFn | None = None
    title: str = ""
    summarise: Callable[[dict[str, Any]], str] | None = None


@dataclass(frozen=True)
class Workflow:
    name: str
    title: str
    steps: tuple[Step, ...]
    describe: str = ""
    needs: frozenset[str] = field(default_factory=frozenset)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


def next_step(workflow: Workflow, records: dict[str, StepRecord]) -> Step | None:
    """The first step not yet succeeded (pure): a running one is re-run, its actions being idempotent."""
    for step in workflow.steps:
        record = records.get(step.name)
        if record is None or record.state is not StepState.SUCCEEDED:
            return step
    return None


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
        START, {"run_id": run_id, "name": name, "position": position, "key": f"run:{run_id}:{name}"}
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
