"""`opsos worker`: an RQ worker on the interactive, default and slow queues."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("worker", help="run an RQ worker (the Procfile's worker process)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rq import SimpleWorker

    from orchestrator import QUEUE_NAMES, Settings, build_services
    from orchestrator.jobs import install, recover_runs
    from orchestrator.queue import queue

    services = build_services(Settings())
    install(services)
    recover_runs(services)
    redis = services.stores.redis
    # SimpleWorker runs each job in this process: the connection pool and the loaded models are
    # reused across jobs instead of being re-created in a forked child for every job.
    worker = SimpleWorker([queue(redis, name) for name in QUEUE_NAMES], connection=redis)
    try:
        worker.work(burst=args.burst, logging_level="WARNING")
    finally:
        services.close()
    return 0
