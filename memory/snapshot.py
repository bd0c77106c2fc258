"""The context snapshot an agent gets: intent, facts, conversation, memories and policies within a token budget."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from memory.longterm import Recalled, estimate_tokens

# The keys a snapshot's sections take when rendered; a step's facts may not reuse them.
SECTIONS = frozenset({"intent", "conversation", "memories", "policies", "omitted"})
CITATION = "memory:"


def citation(memory_id: int) -> str:
    """The id an agent cites a memory by (`memory:<id>`): the one place it is built."""
    return f"{CITATION}{memory_id}"


def cited_memories(cited: Iterable[str]) -> list[int]:
    """The memory ids among an agent's citations (it also cites CRM records and transactions), in order."""
    # A model may cite something malformed ("memory:latest"): it is no memory, and no reason to fail the step.
    return [int(ref.removeprefix(CITATION)) for ref in cited
            if ref.startswith(CITATION) and ref.removeprefix(CITATION).isdigit()]


class SnapshotMemory(BaseModel):
    id: int
    ref: str | None
    kind: str
    subject: str
    text: str
    source: str | None
    score: float

    @classmethod
    def of(cls, memory: Recalled) -> SnapshotMemory:
        return cls(id=memory.id, ref=memory.ref, kind=memory.kind.value, subject=memory.subject, text=memory.text,
                   source=memory.source, score=memory.score)


class SnapshotPolicies(BaseModel):
    """What the agent must respect: actions held for the operator's approval, and the operator's own rules."""

    needs_approval: list[str] = Field(default_factory=list)
    rules: list[SnapshotMemory] = Field(default_factory=list)


class Snapshot(BaseModel):
    intent: dict[str, Any]
    # The records the step resolved for its agent (an audience, a customer, a month's transactions).
    facts: dict[str, Any] = Field(default_factory=dict)
    messages: list[dict[str, Any]]
    memories: list[SnapshotMemory]
    policies: SnapshotPolicies = Field(default_factory=SnapshotPolicies)
    tokens: int
    token_budget: int
    # What did not fit, so an agent (and a test) can tell a thin context from a cut one.
    dropped_messages: int
    dropped_memories: int


def _message_tokens(message: Mapping[str, Any]) -> int:
    return estimate_tokens(str(message.get("text", ""))) + 4  # a few tokens for the speaker and framing


def build_snapshot(
    *,
    intent: Mapping[str, Any],
    messages: Sequence[Mapping[str, Any]],
    memories: Sequence[Recalled],
    facts: Mapping[str, Any] | None = None,
    rules: Sequence[Recalled] = (),
    needs_approval: Sequence[str] = (),
    token_budget: int = 2000,
    message_share: float = 0.4,
) -> Snapshot:
    """Fit the context into `token_budget`: the intent, facts and policies always, then newest messages up to
    `message_share` of what is left, then memories best first, then older messages in what remains.

    `messages` are oldest first (as a conversation reads) and come back oldest first; `memories` and
    `rules` best first, as `LongTermMemory.recall` returns them. A memory among the rules is not sent
    twice. Pure: no I/O, so it is cheap to rebuild. Raises ValueError when a fact takes a section's name.
    """
    facts = dict(facts or {})
    if clash := SECTIONS & facts.keys():
        raise ValueError(f"facts may not be named like a snapshot section: {sorted(clash)}")
    policies = SnapshotPolicies(needs_approval=sorted(needs_approval), rules=[SnapshotMemory.of(r) for r in rules])
    # The parts an agent cannot do without are never cut; if they alone pass the budget, `tokens` says so.
    fixed_tokens = estimate_tokens(str(dict(intent))) + (estimate_tokens(str(facts)) if facts else 0) \
        + (estimate_tokens(policies.model_dump_json()) if needs_approval or rules else 0)
    remaining = max(0, token_budget - fixed_tokens)
    rule_ids = {r.id for r in rules}
    memories = [m for m in memories if m.id not in rule_ids]

    newest_first = list(reversed(messages))
    kept_messages: list[Mapping[str, Any]] = []
    message_cap = int(remaining * message_share)
    next_message = 0
    while next_message < len(newest_first):
        cost = _message_tokens(newest_first[next_message])
        if cost > message_cap:
            break
        kept_messages.append(newest_first[next_message])
        message_cap -= cost
        remaining -= cost
        next_message += 1

    kept_memories: list[SnapshotMemory] = []
    for memory in memories:
        cost = estimate_tokens(memory.text)
        if cost > remaining:
            break  # best first: a lower-ranked memory must not take the place of a better one
        kept_memories.append(SnapshotMemory.of(memory))
        remaining -= cost

    # Older messages get whatever the memories left over; the conversation stays contiguous.
    for message in newest_first[next_message:]:
        cost = _message_tokens(message)
        if cost > remaining:
            break
        kept_messages.append(message)
        remaining -= cost

    tokens = fixed_tokens + sum(_message_tokens(m) for m in kept_messages) \
        + sum(estimate_tokens(m.text) for m in kept_memories)
    return Snapshot(
        intent=dict(intent),
        facts=facts,
        messages=[dict(m) for m in reversed(kept_messages)],
        memories=kept_memories,
        policies=policies,
        tokens=tokens,
        token_budget=token_budget,
        dropped_messages=len(messages) - len(kept_messages),
        dropped_memories=len(memories) - len(kept_memories),
    )
