"""The RQ queues: `interactive` for what the operator waits on, `default` for runs, `slow` for batch work."""
from __future__ import annotations

import structlog
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

log = structlog.get_logger(__name__)

QUEUE_NAMES = ("interactive", "default", "slow")
ADVANCE = "orchestrator.jobs.advance_run"


def queue(redis: Redis, name: str = "default") -> Queue:
    return Queue(name, connection=redis)


def waiting_runs(redis: Redis) -> set[int]:
    """Runs that already have a job waiting in a queue (not yet taken by a worker); empty if Redis is away."""
    try:
        return {int(job.args[0]) for name in QUEUE_NAMES for job in queue(redis, name).jobs
                if job is not None and job.func_name == ADVANCE and job.args}
    except RedisError as error:
        log.warning("queue.unreadable", error=str(error))
        return set()


# The name other layers import it by: `orchestrator.queue` itself stays the module, not hidden by this function.
rq_queue = queue


def enqueue_advance(redis: Redis, run_id: int, *, queue_name: str = "default") -> bool:
    """Ask a worker to move the run on. False if Redis refused: the run's state is safe in PostgreSQL
    and the recovery sweep enqueues it again, so the caller reports success either way."""
    try:
        queue(redis, queue_name).enqueue(
            ADVANCE, run_id, job_timeout=3600, result_ttl=3600, failure_ttl=86400,
            description=f"advance run {run_id}",
        )
    except RedisError as error:
        log.warning("enqueue.failed", run_id=run_id, error=str(error))
        return False
    return True
