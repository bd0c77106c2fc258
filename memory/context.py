"""Short-term context: compact snapshots in Redis with a TTL, rebuilt from PostgreSQL on a miss."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from redis import Redis


class ContextCache:
    """Redis is never the only copy: `build` reads the durable state whenever the snapshot is missing."""

    def __init__(self, redis: Redis, *, ttl_seconds: int = 3600, prefix: str = "opsos:ctx:") -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.prefix = prefix

    def get_or_build(self, key: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        cached = self.redis.get(self.prefix + key)
        if cached is not None:
            return json.loads(cached)
        snapshot = build()
        self.redis.set(self.prefix + key, json.dumps(snapshot, default=str), ex=self.ttl_seconds)
        return snapshot

    def drop(self, key: str) -> None:
        self.redis.delete(self.prefix + key)
