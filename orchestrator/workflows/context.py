"""The context a step runs in: its run and intent, the results of earlier steps, and what a step may do.

A step asks through its context: an approval bound to an action's digest, a model call within the
budget (`budget.calls`), a message to the operator with its audit event, and the context snapshot its
agent reads (`snapshot`, the one way an agent gets context).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import Connection

from agents import StructuredAgent, context_block
from memory import cited_memories, link, step_node
from orchestrator import approvals, audit, outbox, words
from orchestrator.approvals import ApprovalRequest, AwaitingApproval
from orchestrator.budget.calls import call_agent
from orchestrator.intents import Intent
from orchestrator.keys import action_key, step_key
from orchestrator.messages import Message
from orchestrator.policy import Effect
from orchestrator.runs import Run
from orchestrator.services import Services
from orchestrator.workflows.snapshot import Gathered, StepSnapshot, step_snapshot


def _held_by_nobody(conn: Connection) -> None:
    """A context built outside the engine (a test, a command) is held by no worker: there is nobody to check."""


@dataclass
class StepContext:
    services: Services
    run: Run
    intent: Intent
    step: str
    results: dict[str, dict[str, Any]]
    # The engine's `RunLock.own_row`: locks the run's row and raises OwnershipLost when another worker holds the run.
    own_row: Callable[[Connection], None] = _held_by_nobody

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A transaction for this run's records that first checks, under the run's row lock, that this worker
        still holds the run: one whose run was taken over while its step ran writes nothing. The row lock comes
        before the audit chain's, the order every writer takes them in."""
        with self.services.stores.pool.connection() as conn, conn.transaction():
            self.own_row(conn)
            yield conn

    @property
    def key(self) -> str:
        return step_key(self.run.id, self.step)

    def action_key(self, *parts: object) -> str:
        return action_key(self.run.id, self.step, *parts)

    def require_approval(self, *, effect: Effect, action: Any, ask: ApprovalRequest,
                         required: bool = False) -> approvals.Approval | None:
        """Return when policy lets this exact action run (an approval bound to its digest); else AwaitingApproval.

        `action` is what will execute, built by the step from current records each time it runs, so an approval
        binds what runs, not what an earlier run of the step saw: when it differs from what the operator approved,
        that approval is replaced and the ask says what changed. `required` asks whatever policy says (the
        operator was told this action would not run without them, see `winback.collect_renewals`).
        """
        if not required and not self.services.policy.needs_approval(effect, risk=self.intent.risk):
            return None
        digest = approvals.action_digest(action)
        with self.services.stores.pool.connection() as conn:
            granted = approvals.granted(conn, run_id=self.run.id, step=self.step, digest=digest)
            before = None if granted else approvals.approved_before(conn, run_id=self.run.id, step=self.step,
                                                                     effect=effect, digest=digest)
        if granted is not None:
            return granted
        ask = ask.model_copy(update={"effect": effect})
        raise AwaitingApproval(digest=digest, ask=ask if before is None else words.asked_again(ask, before))

    def notify(self, message: Message, *, event: str, payload: dict[str, Any], dedupe: str) -> None:
        """Tell the operator something and record it: outbox row and audit event in one transaction."""
        with self.writing() as conn:
            queued = outbox.post(
                conn, channel=self.intent.channel, conversation=self.intent.conversation, message=message,
                intent_id=self.intent.id, run_id=self.run.id, dedupe_key=f"{self.key}:{dedupe}",
            )
            if queued is not None:
                audit.append(conn, actor="opsos", kind=event, at=self.services.now(), intent_id=self.intent.id,
                             run_id=self.run.id,
                             payload=payload)

    def snapshot(self, *, question: str | None = None,
                 gather: Callable[[], Gathered] | None = None) -> StepSnapshot:
        """The context snapshot for this step's agent, cached under the step's key (see `workflows.snapshot`).

        `question` recalls the memories and policy rules (default: the request); `gather` supplies the
        step's facts and scope, and runs only when the snapshot is built.
        """
        return step_snapshot(self.services, self.intent, key=self.key, question=question or self.intent.request,
                             gather=gather or Gathered)

    def cite(self, cited: list[str]) -> None:
        """Count this step's references to the memories among `cited` (an agent also cites CRM records)."""
        self.services.memory.cite(cited_memories(cited), run_id=self.run.id, step=self.step,
                                  step_key=self.key)

    def link_action(self, key: str) -> None:
        """Enter an outside action in the metadata index under this step, so "why?" can find its chain."""
        link(self.services.stores.pool, ("action", key), step_node(self.key), "part_of")

    def record(self, event: str, payload: dict[str, Any]) -> None:
        with self.writing() as conn:
            audit.append(conn, actor="opsos", kind=event, at=self.services.now(), intent_id=self.intent.id,
                         run_id=self.run.id,
                         payload=payload)

    def agent(self, agent: StructuredAgent, context: StepSnapshot, *, tier: str = "draft",
              may_step_down: bool | None = None) -> dict[str, Any]:
        """Run an agent on this step's snapshot (`snapshot`), on a tier within the budget, or reuse the stored
        result of the same prompt (see `budget.calls.call_agent`). The snapshot is the agent's only context:
        the request goes in as the goal, the rest as the rendered context block. Raises AwaitingApproval when
        the operator must decide first."""
        inputs = {"goal": self.intent.request, "context": context_block(context.snapshot)}
        return call_agent(self, agent, inputs, tier=tier, may_step_down=may_step_down)
