"""`opsos stripe retry-dead`: handle again the Stripe events given up on after too many failed attempts."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stripe", help="the Stripe events received by the webhook")
    actions = parser.add_subparsers(dest="stripe_command", required=True)
    retry = actions.add_parser("retry-dead", help="handle dead events again, with a fresh allowance of attempts")
    retry.add_argument("ids", nargs="*", metavar="EVENT_ID", help="only these events (default: every dead one)")
    retry.set_defaults(run=run_retry_dead, default_log_level="warning")


def run_retry_dead(args: argparse.Namespace) -> int:
    from orchestrator import Settings, build_services, inbound, words

    settings = Settings()
    services = build_services(settings)
    try:
        again = inbound.retry_dead(services, actor=settings.console_identity, ids=args.ids or None)
    finally:
        services.close()
    print(words.stripe_events.dead_retried(again))
    return 0
