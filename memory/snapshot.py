"""The context snapshot an agent gets: the intent, recent conversation and top memories within a token budget."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from memory.longterm import Recalled, estimate_tokens


class SnapshotMemory(BaseModel):
    id: int
    ref: str | None
    kind: str
    subject: str
    text: str
    source: str | None
    score: float


class Snapshot(BaseModel):
    intent: dict[str, Any]
    messages: list[dict[str, Any]]
    memories: list[SnapshotMemory]
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
    token_budget: int = 2000,
    message_share: float = 0.4,
) -> Snapshot:
    """Fit the context into `token_budget`: the intent always, then newest messages up to
    `message_share` of what is left, then memories best first, then older messages in what remains.

    `messages` are oldest first (as a conversation reads) and come back oldest first; `memories`
    best first, as `LongTermMemory.recall` returns them. Pure: no I/O, so it is cheap to rebuild.
    """
    intent_tokens = estimate_tokens(str(dict(intent)))
    remaining = max(0, token_budget - intent_tokens)

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
        kept_memories.append(SnapshotMemory(id=memory.id, ref=memory.ref, kind=memory.kind.value,
                                            subject=memory.subject, text=memory.text, source=memory.source,
                                            score=memory.score))
        remaining -= cost

    # Older messages get whatever the memories left over; the conversation stays contiguous.
    for message in newest_first[next_message:]:
        cost = _message_tokens(message)
        if cost > remaining:
            break
        kept_messages.append(message)
        remaining -= cost

    tokens = intent_tokens + sum(_message_tokens(m) for m in kept_messages) \
        + sum(estimate_tokens(m.text) for m in kept_memories)
    return Snapshot(
        intent=dict(intent),
        messages=[dict(m) for m in reversed(kept_messages)],
        memories=kept_memories,
        tokens=tokens,
        token_budget=token_budget,
        dropped_messages=len(messages) - len(kept_messages),
        dropped_memories=len(memories) - len(kept_memories),
    )
