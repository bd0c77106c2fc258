"""`opsos doctor`: check each configured part of the set-up with one harmless call, one line per part."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="check the database, Redis, Slack, Telegram, Stripe, IMAP, models")
    parser.add_argument("--models", action="store_true",
                        help="also make one tiny call per model tier that is not offline (paid from the budget)")
    parser.set_defaults(run=run, default_log_level="warning")


def run(args: argparse.Namespace) -> int:
    from orchestrator import Settings, doctor

    verdicts = doctor.examine(Settings(), models=args.models)
    for verdict in verdicts:
        print(verdict.render())
    print(doctor.summary(verdicts))
    return 0 if doctor.passed(verdicts) else 1
