"""`opsos contacts import people.csv` and `opsos contacts sync stripe`: the operator's customers into opsos's
contacts, from a CSV with a header row or from their Stripe account."""
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
    imp.set_defaults(run=run)
    sync = sub.add_parser(
        "sync", help="add or update contacts from the customers of your Stripe account (OPSOS_PAYMENTS=stripe), "
                     "linked by their Stripe id; an interrupted sync goes on where it stopped")
    sync.add_argument("source", choices=["stripe"])
    sync.add_argument("--no-progress", action="store_true")
    sync.set_defaults(run=run_sync)
    parser.set_defaults(default_log_level="warning")


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


def run_sync(args: argparse.Namespace) -> int:
    from connectors import ConnectorError
    from orchestrator import Settings, build_services, contacts

    settings = Settings()
    services = build_services(settings)

    def progress(counts: contacts.SyncCounts) -> None:
        if not args.no_progress:
            print(f"page {counts.pages}: {counts.inserted} new, {counts.updated} updated, "
                  f"{counts.unchanged} unchanged so far", file=sys.stderr)

    try:
        summary = contacts.sync_stripe(services, actor=settings.console_identity, progress=progress)
    except contacts.NotOnStripe:
        print("payments are the sandbox: set OPSOS_PAYMENTS=stripe and OPSOS_STRIPE_API_KEY to sync from Stripe",
              file=sys.stderr)
        return 2
    except ConnectorError as error:
        print(f"the sync stopped: {error}\nthe pages done are kept; run `opsos contacts sync stripe` again to go "
              f"on from there", file=sys.stderr)
        return 1
    finally:
        services.stores.close()
    counts = summary.counts
    resumed = f" (went on after {summary.resumed_after})" if summary.resumed_after else ""
    print(f"contacts from Stripe{resumed}: {counts.inserted} new, {counts.updated} updated, "
          f"{counts.unchanged} unchanged, {counts.skipped} skipped (no email address)")
    return 0
