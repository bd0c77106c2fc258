"""Short-term context: snapshots cached in Redis with a TTL, rebuilt from PostgreSQL on a miss."""
from __future__ import annotations

from typing import Any

from memory.context import ContextCache
from memory.longterm import LongTermMemory
from memory.snapshot import build_snapshot


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
