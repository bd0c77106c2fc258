"""Benchmark of `opsos contacts import`: a generated people CSV imported into an empty CRM, then again unchanged,
then again with a tenth of the rows changed.

    python -m bench.bench_contacts [--rows 100000] [--pgdata DIR]

Runs against DATABASE_URL if set, else a throw-away embedded PostgreSQL (pgserver) in a temp folder (or in
--pgdata DIR). It times what the command does after its progress bar's line count: reading and checking every
row, the COPY into the stage and the one update and one insert, committed with their audit event.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import tempfile
import time
from pathlib import Path

from orchestrator import Settings, build_services, contacts

PLANS = [("monthly", "12.00"), ("annual", "8.33"), ("pro", "49"), ("", "")]
STATUSES = ["active", "active", "active", "lapsed", "trialing", "cancelled"]
TAGS = ["vip", "early", "newsletter", "agency", "", ""]


def write_people(path: Path, rows: int, *, changed_every: int = 0, seed: int = 7) -> None:
    """`rows` people with a company and a country column (attributes), as a spreadsheet would export them;
    with `changed_every`, every n-th person's plan moves up."""
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["E-mail", "Full name", "Plan", "MRR", "Status", "Tags", "Notes", "Company", "Country"])
        for n in range(rows):
            plan, amount = PLANS[n % len(PLANS)]
            if changed_every and n % changed_every == 0:
                plan, amount = "pro", "49"
            out.writerow([f"person{n}@example.com", f"Person {n} {rng.choice(['Souza', 'Okafor', 'Lima'])}", plan,
                          amount, STATUSES[n % len(STATUSES)], TAGS[n % len(TAGS)], "",
                          f"Company {n % 997}", rng.choice(["BR", "NG", "FR", "IN"])])


def timed(services, path: Path) -> tuple[float, contacts.ImportSummary]:
    started = time.perf_counter()
    summary = contacts.import_csv(services, path, actor="bench")
    return time.perf_counter() - started, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pgdata", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsos-bench-contacts-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # as root, pgserver's own user must reach its data folder
        database_url = os.environ.get("DATABASE_URL")
        if database_url is None:
            import pgserver

            database_url = pgserver.get_server(args.pgdata or folder / "pg").get_uri()
        settings = Settings(database_url=database_url, data_dir=folder / "data", _env_file=None)
        services = build_services(settings)
        try:
            with services.stores.pool.connection() as conn:
                conn.execute("TRUNCATE crm_contacts")
            first, again, changed = folder / "people.csv", folder / "people.csv", folder / "people-changed.csv"
            write_people(first, args.rows)
            write_people(changed, args.rows, changed_every=10)
            size = first.stat().st_size / 2**20
            print(f"{args.rows:,} rows, {size:.1f} MiB, 9 columns (2 kept as attributes)")
            for label, path in (("first import", first), ("re-import, unchanged", again),
                                ("re-import, plans edited", changed)):
                seconds, s = timed(services, path)
                print(f"{label:<24} {seconds:6.2f} s  {args.rows / seconds:>9,.0f} rows/s   "
                      f"{s.inserted} new, {s.updated} updated, {s.unchanged} unchanged, {len(s.skipped)} skipped")
        finally:
            services.stores.close()


if __name__ == "__main__":
    main()
