"""`opsos scheduler`: the Procfile's scheduler process; RQ's CronScheduler ticks, PostgreSQL slots run each job once."""
from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from orchestrator import Services

log = structlog.get_logger(__name__)

# RQ's CronScheduler gives up when its Redis connection drops (a restart, a failover); the scheduler process starts
# it again after these waits rather than die and leave the digest and recovery to a process manager.
REDIS_RETRY_FIRST_SECONDS = 1.0
REDIS_RETRY_MAX_SECONDS = 30.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("scheduler", help="run the recurring jobs: digest, SLA and budget checks, recovery")
    parser.add_argument("--once", action="store_true",
                        help="run every schedule's due slot in this process and exit (for a system cron)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from orchestrator import Settings, build_services, jobs, scheduler

    services = build_services(Settings())
    jobs.install(services)
    try:
        # Catch-up first, in this process: a digest missed while everything was down goes out now,
        # marked late, even before any worker is up. Slots already done are skipped.
        for ran in scheduler.run_due(services):
            print(f"ran {ran.job} for slot {ran.slot:%Y-%m-%d %H:%M} UTC{' (late)' if ran.late else ''}")
        if args.once:
            return 0
        _tick_forever(services)
    finally:
        services.close()
    return 0


def _tick_forever(services: Services) -> None:
    from redis.exceptions import RedisError

    from orchestrator import scheduler

    wait = REDIS_RETRY_FIRST_SECONDS
    while True:
        try:
            scheduler.cron(services.stores.redis, services.settings).start()
            return
        except RedisError as error:
            log.warning("scheduler.redis_lost", retry_in=wait, error=f"{type(error).__name__}: {error}")
            time.sleep(wait)
            wait = min(wait * 2, REDIS_RETRY_MAX_SECONDS)
