"""`opsos scheduler`: the Procfile's scheduler process; RQ's CronScheduler ticks, PostgreSQL slots run each job once."""
from __future__ import annotations

import argparse


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
        scheduler.cron(services.stores.redis, services.settings).start()
    finally:
        services.close()
    return 0
