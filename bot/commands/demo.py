"""`opsos demo`: the seed's subscription-funnel workflow, end to end on the embedded stack."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="play the win-back workflow through the real stack")
    parser.set_defaults(run=run, default_log_level="warning")


def run(args: argparse.Namespace) -> int:
    from bot.demo import run_demo
    from orchestrator import Settings

    return run_demo(Settings())
