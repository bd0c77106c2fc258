"""`opsos replay RUN_ID`: rebuild a run from its audit events and say where the tables disagree with it."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("replay", help="rebuild a run from the audit log and compare it with the tables")
    parser.add_argument("run_id", type=int, metavar="RUN_ID", help="the run's number, as `status` shows it")
    parser.add_argument("--json", action="store_true", help="print the whole replay report as JSON")
    parser.set_defaults(run=run, default_log_level="warning")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the replay agrees with the tables, 1 when it does not or there is no such run (like `audit`)."""
    from orchestrator import NotFound, Settings, anchors, open_stores, replay, words

    settings = Settings()
    stores = open_stores(settings)
    try:
        report = replay.snapshot(stores.pool, args.run_id, anchors=anchors.book(settings))
    except NotFound as missing:
        print(f"opsos replay: {missing}")
        return 1
    finally:
        stores.close()
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        # Plain lines, not the chat console's wrapped ones: the timeline's columns stay one event per line.
        print(words.replay_verdict(report).plain_text())
    return 0 if report.agrees else 1
