"""`opsos worker`: an RQ worker on the interactive, default and slow queues."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("worker", help="run an RQ worker (the Procfile's worker process)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rq import SimpleWorker

    from bot.senders import start_delivery
    from orchestrator import QUEUE_NAMES, Settings, build_services, jobs, rq_queue

    services = build_services(Settings())
    jobs.install(services)
    jobs.recover_runs(services)
    redis = services.stores.redis
    # SimpleWorker runs each job in this process: the connection pool and the loaded models are
    # reused across jobs instead of being re-created in a forked child for every job.
    worker = SimpleWorker([rq_queue(redis, name) for name in QUEUE_NAMES], connection=redis)
    # Slack and Telegram messages leave from here too when their tokens are set (leases keep senders apart).
    delivery = None if args.burst else start_delivery(services)
    try:
        worker.work(burst=args.burst, logging_level="WARNING")
    finally:
        if delivery is not None:
            delivery.stop()
        services.close()
    return 0
