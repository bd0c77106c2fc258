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

from agents import StructuredAgent, UsageRecorder, cheaper_tiers, model_name, with_recorder
from memory import link, step_node
from orchestrator import agent_calls, approvals, audit, budget, outbox, words
from orchestrator.approvals import ApprovalRequest
from orchestrator.errors import BudgetExceeded
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

    def recall(self, question: str, *, k: int = 5, token_budget: int = 400) -> list[dict[str, Any]]:
        """Long-term memories for an agent's snapshot, each with the id it must cite (`memory:<id>`)."""
        found = self.services.memory.recall(question, k=k, token_budget=token_budget)
        return [{"id": f"memory:{m.id}", "subject": m.subject, "text": m.text} for m in found]

    def cite(self, cited: list[str]) -> None:
        """Count this step's references to the memories among `cited` (an agent also cites CRM records)."""
        ids = [int(ref.split(":", 1)[1]) for ref in cited if ref.startswith("memory:")]
        self.services.memory.cite(ids, run_id=self.run.id, step=self.step)

    def link_action(self, key: str) -> None:
        """Enter an outside action in the metadata index under this step, so "why?" can find its chain."""
        link(self.services.stores.pool, ("action", key), step_node(self.run.id, self.step), "part_of")

    def record(self, event: str, payload: dict[str, Any]) -> None:
        with self.services.stores.pool.connection() as conn, conn.transaction():
            audit.append(conn, actor="opsos", kind=event, intent_id=self.intent.id, run_id=self.run.id,
                         payload=payload)

    def agent(self, agent: StructuredAgent, inputs: dict[str, Any], *, tier: str = "draft",
              may_step_down: bool | None = None) -> dict[str, Any]:
        """Run an agent on a tier within the budget, or reuse the stored result of the same prompt.

        Before the call its estimated cost is reserved in the budget ledger; after it the usage the model
        reported is settled. Near a cap a step that may step down (policy, or `may_step_down`) uses a
        cheaper tier and the report says so. Raises AwaitingApproval when the operator must decide: a
        reason-tier call, or a call that needs more budget than a cap has left ("waiting for budget").
        """
        prompt_hash = agent.prompt_hash(inputs)
        pool = self.services.stores.pool
        with pool.connection() as conn:
            stored = agent_calls.find(conn, run_id=self.run.id, step=self.step, prompt_hash=prompt_hash)
        if stored is not None:
            return stored.output
        settings, policy = self.services.settings, self.services.policy
        caps, prices = budget.Caps.from_settings(settings), agent_calls.price_table(settings.model_prices_path)
        step_down = policy.may_step_down(tier) if may_step_down is None else may_step_down
        tiers = [tier, *cheaper_tiers(tier)] if step_down else [tier]
        models = {t: self.services.models.tier(t) for t in tiers}
        prompt_chars = len(agent.prompt.invoke(inputs).to_string())
        estimates = {t: prices.estimate(model_name(models[t]), prompt_chars, settings.model_max_output_tokens)
                     for t in tiers}
        today = budget.local_today(self.services.now(), settings)
        with pool.connection() as conn, conn.transaction():
            budget.release_abandoned(conn, run_id=self.run.id, step=self.step, caps=caps)
        reservation = None
        # A reservation lost to a concurrent one, or a raise just applied, is planned again; four rounds is plenty.
        for _ in range(4):
            with pool.connection() as conn, conn.transaction():
                standings = budget.standings(conn, tiers=tiers, today=today, caps=caps)
            plan = budget.plan(tier=tier, estimates=estimates, standings=standings, may_step_down=step_down,
                               step_down_at=settings.budget_step_down_at, raise_step=settings.budget_raise_step_usd)
            if plan.decision in (budget.Decision.ASK, budget.Decision.WAIT):
                self._budget_raise(plan, prompt_hash)
                continue
            if plan.tier == "reason" and policy.reason_needs_approval(self.intent.kind):
                self.require_approval(
                    effect=Effect.REASON, action={"agent": agent.name, "tier": "reason", "prompt_hash": prompt_hash},
                    ask=words.reason_request(step=self.step, agent=agent.name, model=model_name(models["reason"]),
                                             estimate_usd=estimates["reason"], intent=self.intent))
            try:
                with pool.connection() as conn:
                    reservation = budget.reserve(conn, run_id=self.run.id, step=self.step, tier=plan.tier,
                                                 model=model_name(models[plan.tier]),
                                                 estimate_usd=estimates[plan.tier], today=today, caps=caps)
                break
            except budget.CapReached:
                continue
        if reservation is None:
            raise BudgetExceeded(0.0, 0.0)
        recorder = UsageRecorder()
        try:
            result = agent.invoke(with_recorder(models[plan.tier], recorder), inputs)
        except Exception:
            with pool.connection() as conn, conn.transaction():
                budget.release(conn, reservation, caps=caps)
            raise
        # The callback saw every response of the call (a retried one too); the result only the last.
        input_tokens = recorder.input_tokens if recorder.responses else result.input_tokens
        output_tokens = recorder.output_tokens if recorder.responses else result.output_tokens
        cost = recorder.cost(prices) if recorder.responses else prices.cost(result.model, input_tokens, output_tokens)
        channel, conversation = self._operator_address()
        with pool.connection() as conn, conn.transaction():
            after = budget.settle(conn, reservation, model=recorder.model(result.model), input_tokens=input_tokens,
                                  output_tokens=output_tokens, cost_usd=cost, caps=caps)
            call = agent_calls.record(
                conn, run_id=self.run.id, step=self.step, tier=plan.tier, model=result.model, prompt_hash=prompt_hash,
                output=result.output.model_dump(mode="json"), input_tokens=input_tokens,
                output_tokens=output_tokens, cost_usd=cost,
            )
            audit.append(conn, actor=f"agent:{agent.name}", kind="agent.called", intent_id=self.intent.id,
                         run_id=self.run.id, payload={"step": self.step, "tier": plan.tier, "model": result.model,
                                                      "prompt_hash": prompt_hash, "call": call.id,
                                                      "tokens": input_tokens + output_tokens, "cost_usd": cost})
            if plan.tier != tier:
                audit.append(conn, actor="budget", kind="budget.stepped_down", intent_id=self.intent.id,
                             run_id=self.run.id, payload={"step": self.step, "from": tier, "to": plan.tier,
                                                          "note": words.stepped_down(self.step, tier, plan.tier)})
            budget.post_alerts(conn, after, channel=channel, conversation=conversation)
        return call.output

    def _budget_raise(self, plan: budget.Plan, prompt_hash: str) -> None:
        """Apply the operator's approved raise for this ask and return, or ask for it (AwaitingApproval)."""
        assert plan.blocking is not None
        pool = self.services.stores.pool
        with pool.connection() as conn:
            round_ = budget.raises_applied(conn, run_id=self.run.id, step=self.step)
        period = plan.blocking.period
        # Bound to the cap and the amount, not to the spend: other runs' calls while it waits ask nothing new.
        action = {"raise_cap": period.scope, "period": period.period, "starts_on": period.starts_on.isoformat(),
                  "amount_usd": plan.shortfall_usd, "step": self.step, "prompt_hash": prompt_hash, "round": round_}
        digest = approvals.action_digest(action)
        with pool.connection() as conn, conn.transaction():
            budget.record_ask(conn, run_id=self.run.id, step=self.step, digest=digest, plan=plan)
            granted = approvals.granted(conn, run_id=self.run.id, step=self.step, digest=digest)
            if granted is not None:
                amount = budget.apply_raise(conn, run_id=self.run.id, step=self.step, digest=digest,
                                            approval_id=granted.id)
                audit.append(conn, actor=granted.decided_by or "operator", kind="budget.raised",
                             intent_id=self.intent.id, run_id=self.run.id,
                             payload={"cap": budget.cap_name(period), "amount_usd": amount, "approval": granted.id})
                return
            if plan.decision is budget.Decision.WAIT:
                channel, conversation = self._operator_address()
                budget.post_alerts(conn, [plan.blocking], channel=channel, conversation=conversation,
                                   force_full=period)
        raise AwaitingApproval(digest=digest, ask=words.budget_request(
            step=self.step, tier=plan.tier, cap=budget.cap_name(period), spent=plan.blocking.spent
            + plan.blocking.reserved, limit=plan.blocking.cap or 0.0, raise_usd=plan.shortfall_usd,
            waiting=plan.decision is budget.Decision.WAIT))

    def _operator_address(self) -> tuple[str, str]:
        """Where budget alerts go: the operator's home channel when set, else the conversation of this intent."""
        home = self.services.settings.home_channel
        if home and ":" in home:
            channel, conversation = home.split(":", 1)
            return channel, conversation
        return self.intent.channel, self.intent.conversation


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
