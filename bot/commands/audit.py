"""`opsos audit verify [--full]`: check the audit log against its anchors and name the first broken link."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="inspect the audit log")
    actions = parser.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser("verify", help="check the audit log against its anchors (the events since the "
                                               "newest anchor; --full: every event and every anchor)")
    verify.add_argument("--full", action="store_true", help="re-hash every event from the first one")
    verify.set_defaults(run=run_verify, default_log_level="warning")


def run_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the chain and its anchors hold, 1 when the chain is broken or an anchor line is refused."""
    from orchestrator import Settings, anchors, open_stores, words

    settings = Settings()
    stores = open_stores(settings)
    try:
        with stores.pool.connection() as conn:
            report = anchors.verify(conn, anchors.book(settings), full=args.full)
    finally:
        stores.close()
    print(words.chain_verdict(report))
    if report.anchor is not None:
        # The same line the digests carried: compare it with the ones kept in the chat history.
        print(words.anchor_line(report.anchor))
    return 0 if report.trusted else 1
