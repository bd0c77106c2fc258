"""`opsos audit verify [--full]`: check the audit log against its anchors and name the first broken link;
`opsos audit anchor [--accept-gap]`: sign the head now; with the flag, over a gap in the anchors, once checked."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="inspect the audit log")
    actions = parser.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser("verify", help="check the audit log against its anchors (the events since the "
                                               "newest anchor; --full: every event and every anchor)")
    verify.add_argument("--full", action="store_true", help="re-hash every event from the first one")
    verify.set_defaults(run=run_verify, default_log_level="warning")
    anchor = actions.add_parser("anchor", help="anchor the chain's head now (the scheduler does it every few minutes)")
    anchor.add_argument("--accept-gap", action="store_true",
                        help="anchor even though events older than the schedule allows are unanchored (after the "
                             "anchor file was lost, or the scheduler stopped): only once you have checked them")
    anchor.set_defaults(run=run_anchor, default_log_level="warning")


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


def run_anchor(args: argparse.Namespace) -> int:
    """Exit 0 when the head is anchored (now or already), 1 when the check refused to vouch for the chain."""
    from datetime import UTC, datetime

    from orchestrator import Settings, anchors, open_stores, words

    settings = Settings()
    stores = open_stores(settings)
    try:
        with stores.pool.connection() as conn:
            done = anchors.anchor(conn, anchors.book(settings), now=datetime.now(UTC), accept_gap=args.accept_gap)
    finally:
        stores.close()
    print(words.chain_verdict(done.report))
    if done.anchor is not None:
        print(words.anchor_line(done.anchor))
    return 0 if done.anchor is not None else 1
