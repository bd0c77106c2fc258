"""`opsos chat`: the console front end on the embedded stack (or the configured servers)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("chat", help="talk to opsos in this terminal")
    parser.set_defaults(run=run, default_log_level="warning")


def run(args: argparse.Namespace) -> int:
    from bot.console import ConsoleSession, OutboxPrinter
    from bot.workers import start_worker, stop_worker
    from orchestrator import Operations, Settings, build_services, router_classifier

    settings = Settings()
    services = build_services(settings)
    worker = start_worker(services.stores, settings)
    ops = Operations(services, router_classifier(settings.kinds_file))
    session = ConsoleSession(ops, identity=settings.console_identity)
    printer = OutboxPrinter(session)
    printer.start()
    print("opsos chat — type a request, “status”, or “help”; Ctrl-D to leave.")
    try:
        while True:
            try:
                line = input("you   ▸ ")
            except EOFError:
                break
            if line.strip():
                session.say(line)
    except KeyboardInterrupt:
        pass
    finally:
        printer.stop()
        stop_worker(worker)
        services.close()
    return 0
