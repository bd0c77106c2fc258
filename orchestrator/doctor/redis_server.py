"""Redis's check: one PING."""
from __future__ import annotations

from redis import Redis
from redis.exceptions import RedisError

from orchestrator.doctor.verdict import Verdict, failed, ok
from orchestrator.words import doctor as said

PART = "redis"


def check_redis(redis: Redis) -> Verdict:
    try:
        redis.ping()
    except (RedisError, OSError) as error:
        return failed(PART, said.redis_unreachable(str(error).rstrip(".")), said.REDIS_FIX)
    options = redis.connection_pool.connection_kwargs
    where = options.get("path") or f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"
    return ok(PART, said.redis_answers(str(where)))
