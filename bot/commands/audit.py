"""`opsos audit verify`: check the audit log's hash chain and name the first broken link."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="inspect the audit log")
    actions = parser.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser("verify", help="check the hash chain of every audit event")
    verify.set_defaults(run=run_verify, default_log_level="warning")


def run_verify(args: argparse.Namespace) -> int:
    from orchestrator import Settings, audit, open_stores

    stores = open_stores(Settings())
    try:
        with stores.pool.connection() as conn:
            report = audit.verify(conn)
    finally:
        stores.close()
    if report.ok:
        print(f"audit chain intact: {report.checked} events verified")
        return 0
    print(f"audit chain BROKEN at event {report.first_broken_id}: {report.problem} "
          f"({report.checked} events before it verified)")
    return 1
