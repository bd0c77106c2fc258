"""`opsos prune`: remove what the retention rules let go (delivered messages, old slots, ...), counted per table."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prune", help="remove rows past retention (never audit events)")
    parser.add_argument("--older-than", type=int, default=None, metavar="DAYS",
                        help="age in days (default: OPSOS_RETENTION_DAYS, 90; 0 keeps everything)")
    parser.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    parser.set_defaults(run=run, default_log_level="warning")


def run(args: argparse.Namespace) -> int:
    from orchestrator import Settings, build_services, retention

    settings = Settings()
    days = settings.retention_days if args.older_than is None else args.older_than
    if days < 0:
        print("opsos prune: --older-than takes a number of days, 0 or more")
        return 2
    services = build_services(settings)
    try:
        with services.stores.pool.connection() as conn, conn.transaction():
            pruned = retention.prune(conn, now=services.now(), older_than_days=days, dry_run=args.dry_run)
    finally:
        services.close()
    if pruned.before is None:
        print("retention is 0 days: nothing is pruned")
        return 0
    verb = "would remove" if pruned.dry_run else "removed"
    print(f"{verb} rows older than {pruned.before:%Y-%m-%d %H:%M} UTC:")
    for table, count in pruned.counts.items():
        print(f"  {table}: {count}")
    return 0
