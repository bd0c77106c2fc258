"""`opsos outbox retry-dead`: queue again the messages given up on after too many failed attempts."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("outbox", help="the messages waiting to go to Slack and Telegram")
    actions = parser.add_subparsers(dest="outbox_command", required=True)
    retry = actions.add_parser("retry-dead", help="send dead messages again, with a fresh allowance of attempts")
    retry.add_argument("ids", type=int, nargs="*", metavar="ID", help="only these messages (default: every one)")
    retry.set_defaults(run=run_retry_dead, default_log_level="warning")


def run_retry_dead(args: argparse.Namespace) -> int:
    from orchestrator import Settings, build_services, delivery, words

    settings = Settings()
    services = build_services(settings)
    try:
        requeued = delivery.retry_dead(services.stores.pool, now=services.now(), actor=settings.console_identity,
                                       ids=args.ids or None)
    finally:
        services.close()
    print(words.dead_requeued(requeued).plain_text())
    return 0
