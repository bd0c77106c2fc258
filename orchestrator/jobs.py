"""RQ job entry points: plain synchronous functions, run by `opsos worker` (or any `rq worker` with opsos installed)."""
from __future__ import annotations

import psycopg
import structlog

from orchestrator import engine, inbound
from orchestrator.ownership import try_lock_run, unlock_run
from orchestrator.queue import enqueue_advance, waiting_runs
from orchestrator.services import Services, build_services
from orchestrator.settings import Settings
from orchestrator.workflows import WORKFLOWS, add_operator_workflows

log = structlog.get_logger(__name__)

_services: Services | None = None


def install(services: Services | None) -> None:
    """Give this process's jobs the services it already built (the worker command does this)."""
    global _services
    _services = services


def services() -> Services:
    global _services
    if _services is None:
        settings = Settings()
        add_operator_workflows(settings.workflows_dir)
        _services = build_services(settings)
    return _services


def advance_run(run_id: int) -> str:
    return engine.advance(services(), run_id).value


def handle_stripe_event(event_id: str) -> str | None:
    """Rule on a stored Stripe event (see `inbound.handle`); its outcome, or None if it was handled before."""
    outcome = inbound.handle(services(), event_id)
    return outcome.value if outcome is not None else None


def recover_runs(services: Services) -> list[int]:
    """Enqueue every queued, running or compensating run that no worker holds: its job was lost with Redis or a
    killed worker (or its worker met an outage of PostgreSQL or Redis and left it to be taken up again).

    The advisory lock tells a run being worked on from an orphan. A run whose worker lost its lock's session
    while still working looks like an orphan too; the worker notices before its next outside action
    (`ownership.RunLock.check`) and stops, and its actions' exclusive claims keep the two from acting twice.
    A run whose job still waits in a queue (the workers are busy) is no orphan: enqueueing it again every
    minute would pile up jobs that each find it done. A run enqueued twice anyway (two recoveries at once) is
    harmless: the second job finds it busy or finished.
    """
    with services.stores.pool.connection() as conn:
        candidates = conn.execute(
            "SELECT id, workflow FROM runs WHERE state IN ('queued', 'running', 'compensating') ORDER BY id"
        ).fetchall()
    waiting = waiting_runs(services.stores.redis)
    orphans: list[int] = []
    with psycopg.connect(services.stores.database_url, autocommit=True) as probe:
        for row in candidates:
            if row["id"] in waiting:
                continue
            if try_lock_run(probe, row["id"]):
                unlock_run(probe, row["id"])
                orphans.append(row["id"])
    queues = {row["id"]: WORKFLOWS[row["workflow"]].queue if row["workflow"] in WORKFLOWS else "default"
              for row in candidates}
    for run_id in orphans:
        enqueue_advance(services.stores.redis, run_id, queue_name=queues[run_id])
    if orphans:
        log.info("runs.recovered", runs=orphans)
    return orphans


__all__ = ["advance_run", "handle_stripe_event", "install", "recover_runs"]
