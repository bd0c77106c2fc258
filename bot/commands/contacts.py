"""`opsos contacts import people.csv`: the operator's customers into opsos's contacts, from a CSV with a header row."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Of many bad rows, the first ones are printed and the rest counted: a wrong file should not scroll for minutes.
PRINTED_BAD_ROWS = 100


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("contacts", help="bring your customers into opsos")
    sub = parser.add_subparsers(dest="contacts_command", required=True, metavar="ACTION")
    imp = sub.add_parser(
        "import", help="add or update contacts from a CSV: a header row (email, name, plan, status, monthly amount, "
                       "tags, notes; other columns are kept as attributes), matched by email address")
    imp.add_argument("file", type=Path)
    imp.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=run, default_log_level="warning")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from connectors import BadFile
    from orchestrator import Settings, build_services, contacts

    path: Path = args.file
    if not path.is_file():
        print(f"no such file: {path}", file=sys.stderr)
        return 2
    settings = Settings()
    services = build_services(settings)
    try:
        with tqdm(total=max(contacts.count_lines(path) - 1, 0), unit="line", disable=args.no_progress,
                  file=sys.stderr) as bar:
            summary = contacts.import_csv(services, path, actor=settings.console_identity, progress=bar.update)
    except BadFile as error:
        print(f"{path}: {error}; nothing was imported", file=sys.stderr)
        return 2
    finally:
        services.stores.close()
    for bad in summary.skipped[:PRINTED_BAD_ROWS]:
        print(f"line {bad.line}: {bad.reason}", file=sys.stderr)
    if len(summary.skipped) > PRINTED_BAD_ROWS:
        print(f"… and {len(summary.skipped) - PRINTED_BAD_ROWS} more bad lines", file=sys.stderr)
    print("columns: " + ", ".join(f"{column} → {field.replace('_', ' ')}" for column, field in summary.columns))
    print(f"contacts from {summary.file}: {summary.inserted} new, {summary.updated} updated, "
          f"{summary.unchanged} unchanged, {len(summary.skipped)} skipped")
    return 1 if summary.skipped else 0
