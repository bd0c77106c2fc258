"""`python -m bench.faults`: one seeded fault-injection run, its progress as structured lines, then the table."""
from __future__ import annotations

import argparse
import sys

from bench.faults.harness import Config, Outcome, run
from bench.faults.injector import KINDS


def table(outcome: Outcome) -> list[str]:
    """The figures as a Markdown table, the way the README shows the benchmarks."""
    verdict, config = outcome.verdict, outcome.config
    finished = sum(n for state, n in verdict.runs.items() if state in ("succeeded", "failed", "compensated",
                                                                       "cancelled"))
    held = sum(n for state, n in verdict.runs.items() if state in ("paused", "awaiting_approval"))
    rows = [
        ("seed / requests / workers", f"{config.seed} / {config.runs} / {config.workers}"),
        ("requests accepted (a copy got 200) / never accepted", f"{verdict.requests_accepted} / "
                                                                f"{verdict.requests_refused}"),
        ("runs started / finished / held with a reason / unfinished",
         f"{sum(verdict.runs.values())} / {finished} / {held} / {len(verdict.unfinished)}"),
        ("run states", ", ".join(f"{state} {n}" for state, n in sorted(verdict.runs.items())) or "none"),
        ("faults injected", f"{sum(outcome.injected.values())} (+{sum(outcome.missed.values())} found no target)"),
        *((f"  {kind}", str(outcome.injected.get(kind, 0)) + (f" (+{outcome.missed[kind]} no target)"
                                                             if outcome.missed.get(kind) else ""))
          for kind in KINDS if kind in outcome.injected or kind in outcome.missed),
        ("process restarts", ", ".join(f"{name} {n}" for name, n in sorted(outcome.restarts.items()) if n) or "0"),
        ("duplicates", str(sum(verdict.duplicates.values()))),
        *((f"  {kind}", str(n)) for kind, n in sorted(verdict.duplicates.items())),
        ("re-sent after a lost answer", str(sum(verdict.resent.values()))),
        *((f"  {kind}", str(n)) for kind, n in sorted(verdict.resent.items())),
        ("losses", str(sum(verdict.losses.values()))),
        *((f"  {kind}", str(n)) for kind, n in sorted(verdict.losses.items())),
        ("audit chain", f"{'verifies' if verdict.audit_ok else 'BROKEN ' + verdict.audit_error}, "
                        f"{verdict.audit_checked} events"),
        ("budget reservations still open", str(verdict.open_reservations)),
        ("chat messages still undelivered", str(verdict.undelivered)),
        ("settled", "yes" if outcome.settled else "NO (timed out)"),
        ("wall time", f"{outcome.elapsed:.0f} s"),
    ]
    lines = ["| | |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in rows]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=12, help="requests to send (every other one a win-back)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--faults", type=int, default=None, help="faults to inject (default: two per request)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated fault kinds to draw from")
    parser.add_argument("--settle", type=float, default=240.0, help="seconds to wait for the work to finish")
    parser.add_argument("--keep", action="store_true", help="keep the data folder and the processes' logs")
    args = parser.parse_args(argv)
    kinds = tuple(kind.strip() for kind in args.kinds.split(",") if kind.strip())
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown fault kinds: {', '.join(unknown)}")
    outcome = run(Config(seed=args.seed, runs=args.runs, workers=args.workers, faults=args.faults, kinds=kinds,
                         settle_seconds=args.settle, keep=args.keep))
    print()
    for line in outcome.verdict.duplicate_detail:
        print(f"faults.duplicate {line}")
    for line in outcome.verdict.resent_detail:
        print(f"faults.resent {line}")
    for line in outcome.verdict.loss_detail:
        print(f"faults.loss {line}")
    for line in outcome.verdict.held:
        print(f"faults.held {line}")
    if outcome.verdict.unfinished:
        print(f"faults.unfinished runs={outcome.verdict.unfinished}")
    if outcome.verdict.held_without_reason:
        print(f"faults.held_without_reason runs={outcome.verdict.held_without_reason}")
    if args.keep:
        print(f"faults.kept data={outcome.data_dir}")
    print()
    print("\n".join(table(outcome)))
    return 0 if outcome.verdict.clean else 1


if __name__ == "__main__":
    sys.exit(main())
