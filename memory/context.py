"""Short-term context: compact snapshots in Redis with a TTL, rebuilt from PostgreSQL on a miss."""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError


class ContextCache:
    """Redis is never the only copy: `build` reads the durable state whenever the snapshot is missing.

    Redis expires an entry after `ttl_seconds`; each entry also carries its build time, checked
    against `clock` (seconds, default `time.time`), so tests inject time instead of sleeping and a
    snapshot is never served older than its TTL even if Redis expiry lags.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_seconds: int = 3600,
        prefix: str = "opsos:ctx:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.prefix = prefix
        self.clock = clock

    def get_or_build(self, key: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The cached snapshot, or a fresh one from `build`. Redis being down costs a rebuild, never a failure."""
        try:
            cached = self.redis.get(self.prefix + key)
        except RedisError:
            cached = None
        if cached is not None:
            entry = json.loads(cached)
            fresh = (isinstance(entry, dict) and "snapshot" in entry and "built_at" in entry
                     and self.clock() - float(entry["built_at"]) < self.ttl_seconds)
            if fresh:
                return entry["snapshot"]
            # An entry without a build time (an older format) or past its TTL: rebuild.
        snapshot = build()
        entry = {"built_at": self.clock(), "snapshot": snapshot}
        with contextlib.suppress(RedisError):
            self.redis.set(self.prefix + key, json.dumps(entry, default=str), ex=self.ttl_seconds)
        # The same JSON shape on a miss as on a hit: never a datetime one time and a string the next.
        return json.loads(json.dumps(snapshot, default=str))

    def drop(self, key: str) -> None:
        self.redis.delete(self.prefix + key)
