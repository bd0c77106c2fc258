"""Short-term context: snapshots cached in Redis with a TTL, rebuilt from PostgreSQL on a miss."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from memory.context import ContextCache
from memory.longterm import LongTermMemory, Recalled
from memory.snapshot import build_snapshot, citation, cited_memories


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_snapshot_expires_after_its_ttl_and_is_rebuilt_from_postgresql(db, redis, embedder) -> None:
    """A hit serves Redis; past the TTL (injected clock, no sleeping) or with Redis emptied, the
    snapshot is rebuilt from PostgreSQL and reflects what changed there meanwhile."""
    ltm = LongTermMemory(db, embedder)
    ltm.remember("Ana prefers email over phone.", kind="fact", subject="customer:ana")
    clock = Clock()
    cache = ContextCache(redis, ttl_seconds=60, clock=clock)
    builds: list[int] = []

    def build() -> dict[str, Any]:
        builds.append(1)
        memories = ltm.recall("how should we contact Ana?", subject="customer:ana", k=5)
        snap = build_snapshot(intent={"id": 7, "goal": "email Ana"},
                              messages=[{"from": "operator", "text": "email Ana about her order"}],
                              memories=memories, token_budget=500)
        return snap.model_dump(mode="json")

    first = cache.get_or_build("run:12", build)
    assert [m["text"] for m in first["memories"]] == ["Ana prefers email over phone."]
    assert 0 < redis.ttl("opsos:ctx:run:12") <= 60  # Redis also expires it on its own

    ltm.remember("Ana asked for invoices as PDF.", kind="fact", subject="customer:ana")
    clock.now += 59
    assert cache.get_or_build("run:12", build) == first and len(builds) == 1  # still fresh

    clock.now += 2  # past the TTL
    rebuilt = cache.get_or_build("run:12", build)
    assert len(builds) == 2 and len(rebuilt["memories"]) == 2

    redis.flushdb()  # Redis lost: nothing is lost, the next read rebuilds
    assert cache.get_or_build("run:12", build) == rebuilt and len(builds) == 3


def test_snapshot_keeps_the_intent_and_fits_messages_and_memories_in_the_budget(db, embedder) -> None:
    """The newest messages and the best memories go in first; what does not fit is counted, not sent."""
    ltm = LongTermMemory(db, embedder)
    for i in range(6):
        ltm.remember(f"Note {i} about Ana: " + "detail " * 20, kind="customer_interaction",
                     subject="customer:ana", ref=f"n{i}")
    memories = ltm.recall("Ana", subject="customer:ana", k=6)
    messages = [{"from": "operator", "text": f"message {i} " + "word " * 10} for i in range(10)]

    snap = build_snapshot(intent={"id": 7, "goal": "email Ana"}, messages=messages, memories=memories,
                          token_budget=200)

    assert snap.tokens <= 200
    assert snap.intent["id"] == 7
    assert snap.messages[-1]["text"] == messages[-1]["text"]  # newest kept, order preserved
    assert [m.id for m in snap.memories] == [m.id for m in memories[: len(snap.memories)]]
    assert snap.dropped_messages > 0 and snap.dropped_memories > 0


def recalled(memory_id: int, text: str, kind: str = "fact") -> Recalled:
    return Recalled(id=memory_id, ref=None, refs=[], text=text, kind=kind, subject="operator", score=1.0,
                    similarity=None, vector_rank=None, text_rank=None, source=None, provenance={},
                    created_at=datetime(2026, 3, 1, tzinfo=UTC), version=1, current=True)


def test_policies_and_facts_are_always_kept_and_a_rule_is_not_sent_twice() -> None:
    """The operator's rules and the step's facts are never cut; a memory recalled as a rule is not also a memory."""
    rule = recalled(1, "Never refund more than $50 without asking.", kind="policy")
    snap = build_snapshot(intent={"id": 1}, facts={"customer": {"id": "c-ana"}}, messages=[],
                          memories=[rule, recalled(2, "Ana likes email.")], rules=[rule],
                          needs_approval=["send_email", "refund"], token_budget=10)
    assert snap.facts == {"customer": {"id": "c-ana"}}
    assert snap.policies.needs_approval == ["refund", "send_email"]
    assert [r.id for r in snap.policies.rules] == [1] and 1 not in [m.id for m in snap.memories]


def test_a_fact_named_like_a_section_is_refused() -> None:
    with pytest.raises(ValueError, match="memories"):
        build_snapshot(intent={"id": 1}, facts={"memories": []}, messages=[], memories=[])


@pytest.mark.parametrize(("cited", "ids"), [
    (["memory:3", "crm:c-ana", "memory:12"], [3, 12]),
    (["txn:4"], []),
    (["memory:latest", "memory:", "memory:7"], [7]),  # a malformed citation is no memory, not a failure
])
def test_cited_memories_reads_only_memory_citations(cited: list[str], ids: list[int]) -> None:
    assert cited_memories(cited) == ids
    assert cited_memories([citation(i) for i in ids]) == ids  # what an agent is shown is what it cites
