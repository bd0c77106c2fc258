"""An agent's context snapshot, built in one place: intent, facts, the conversation before it, memories, policies.

Every step that calls an agent gets its context here (`StepContext.snapshot`), cached in Redis under
the step's key for the settings' TTL. The conversation is what the operator's channel and
conversation held *before* the intent was made: a rebuild (the TTL passed, or Redis was lost) reads
the same rows, so a re-run sends the same prompt and reuses the stored model call.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from memory import Kind, Snapshot, build_snapshot
from orchestrator import intents, outbox
from orchestrator.intents import Intent
from orchestrator.policy import ACTION_EFFECTS, Policy, Risk
from orchestrator.services import Services

# One message past this is cut: a long report must not push every older message out of the budget.
MESSAGE_CHARS = 600
MEMORIES_K, MEMORY_TOKENS = 5, 400
RULES_K, RULE_TOKENS = 3, 300


class Gathered(BaseModel):
    """What a step resolved for its agent: facts it shows, and a scope it holds back (see `proposals.Scope`)."""

    facts: dict[str, Any] = Field(default_factory=dict)
    scope: dict[str, Any] = Field(default_factory=dict)


class StepSnapshot(BaseModel):
    """The cache entry of one step: the snapshot its agent reads, and the scope gathered with it.

    Cached together so a re-run screens the agent's proposal against exactly the records it was shown.
    """

    snapshot: Snapshot
    scope: dict[str, Any] = Field(default_factory=dict)


def intent_brief(intent: Intent) -> dict[str, Any]:
    """The intent as an agent sees it: what was asked, by whom, and its constraints (pure)."""
    return {"id": intent.id, "kind": intent.kind, "request": intent.request, "requested_by": intent.requested_by,
            "budget_usd": intent.budget_usd, "deadline": intent.deadline.isoformat(), "risk": intent.risk}


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def conversation(services: Services, intent: Intent) -> list[dict[str, Any]]:
    """The newest earlier messages of the intent's conversation, oldest first: the operator's requests and what
    opsos said back. Bounded by the intent's own `created_at` (database time, as every row's is), so the
    current request and what its run says are never part of its own conversation."""
    limit = services.settings.context_messages
    if limit == 0:
        return []
    where = {"channel": intent.channel, "conversation": intent.conversation, "before": intent.created_at,
             "limit": limit}
    with services.stores.pool.connection() as conn:
        asked = intents.earlier_in(conn, **where)
        said = outbox.earlier_in(conn, **where)
    rows = [(i.created_at, 0, {"from": i.requested_by, "at": i.created_at.isoformat(), "intent": i.id,
                               "text": _clip(i.request)}) for i in asked]
    rows += [(o.created_at, 1, {"from": "opsos", "at": o.created_at.isoformat(), "intent": o.intent_id,
                                "text": _clip(o.message.plain_text())}) for o in said]
    # A request sorts before what opsos said in the same instant: the reply follows what it answers.
    rows.sort(key=lambda row: (row[0], row[1]))
    return [message for _, _, message in rows[-limit:]]


def needs_approval(policy: Policy, risk: Risk) -> list[str]:
    """The action types policy holds for the operator's approval on an intent of this risk (pure): what the agent
    is told waits for the operator is what does (a careful intent holds every outside action)."""
    return sorted(action for action, effect in ACTION_EFFECTS.items() if policy.needs_approval(effect, risk=risk))


def build(services: Services, intent: Intent, *, question: str, facts: dict[str, Any]) -> Snapshot:
    """A fresh snapshot from PostgreSQL: `question` recalls the memories and the operator's policy rules."""
    memory = services.memory
    rules = memory.recall(question, kind=Kind.POLICY, k=RULES_K, token_budget=RULE_TOKENS)
    memories = memory.recall(question, k=MEMORIES_K, token_budget=MEMORY_TOKENS)
    return build_snapshot(intent=intent_brief(intent), facts=facts, messages=conversation(services, intent),
                          memories=memories, rules=rules, needs_approval=needs_approval(services.policy, intent.risk),
                          token_budget=services.settings.context_token_budget)


def step_snapshot(services: Services, intent: Intent, *, key: str, question: str,
                  gather: Callable[[], Gathered]) -> StepSnapshot:
    """The step's snapshot from Redis while fresh, else built (`gather` runs only then) and cached under `key`.

    Redis down costs a rebuild, never the step (`ContextCache.get_or_build`).
    """
    def fresh() -> dict[str, Any]:
        gathered = gather()
        snapshot = build(services, intent, question=question, facts=gathered.facts)
        return StepSnapshot(snapshot=snapshot, scope=gathered.scope).model_dump(mode="json")

    return StepSnapshot.model_validate(services.context.get_or_build(key, fresh))
