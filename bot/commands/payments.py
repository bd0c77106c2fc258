"""`opsos payments check`: ask the payments backend (Stripe, or the sandbox) whether it can be used, in a sentence."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("payments", help="the payments backend (sandbox or Stripe)")
    actions = parser.add_subparsers(dest="payments_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="check the Stripe key with one read call")
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    from orchestrator import Settings, build_services, check_payments

    services = build_services(Settings())
    try:
        usable, said = check_payments(services)
    finally:
        services.close()
    print(said)
    return 0 if usable else 1
