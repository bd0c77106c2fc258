"""`opsos memory import|recall|stats|reclaim`: bring history into long-term memory, ask it out, keep it small."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

KINDS = ["customer_interaction", "decision", "policy", "outcome", "summary", "fact"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("memory", help="import, recall and inspect long-term memory")
    sub = parser.add_subparsers(dest="memory_command", required=True, metavar="ACTION")

    imp = sub.add_parser("import", help="load memories from a JSONL file, one {text, subject, kind, at, ref} a line")
    imp.add_argument("file", type=Path)
    imp.add_argument("--batch-size", type=int, default=256)
    imp.add_argument("--source", default=None, help="provenance source (default: the file name)")
    imp.add_argument("--no-progress", action="store_true")

    rec = sub.add_parser("recall", help="the memories an agent would get for a question, best first")
    rec.add_argument("question")
    rec.add_argument("--subject")
    rec.add_argument("--kind", choices=KINDS)
    rec.add_argument("--k", type=int, default=10)
    rec.add_argument("--history", action="store_true", help="include superseded versions")
    rec.add_argument("--json", action="store_true")

    sub.add_parser("stats", help="counts, size on disk and what the next reclamation would remove")

    rcl = sub.add_parser("reclaim", help="remove memories past retention that nothing references (audited)")
    rcl.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    parser.set_defaults(run=run, default_log_level="warning")


def run(args: argparse.Namespace) -> int:
    # Heavy imports here, so `opsos --help` does not load torch or connect anywhere.
    from memory.embedder import get_embedder
    from memory.longterm import LongTermMemory
    from orchestrator import Settings, open_stores

    stores = open_stores(Settings())
    try:
        memory = LongTermMemory(stores.pool, get_embedder())
        if args.memory_command == "import":
            return _import(memory, args)
        if args.memory_command == "recall":
            return _recall(memory, args)
        if args.memory_command == "reclaim":
            return _reclaim(memory, stores, args)
        return _stats(memory)
    finally:
        stores.close()


def _parse_lines(path: Path, source: str, errors: list[str]) -> Iterator[Any]:
    from pydantic import ValidationError

    from memory.longterm import MemoryIn, Provenance

    with path.open("rb") as fh:
        for number, data in enumerate(fh, start=1):
            if not data.strip():
                continue
            try:
                try:
                    line = data.decode("utf-8")
                except UnicodeDecodeError as bad:
                    raise ValueError(f"not UTF-8 (byte 0x{data[bad.start]:02x} at column {bad.start + 1})") from bad
                raw = json.loads(line)
                if not isinstance(raw, dict):
                    raise ValueError("not a JSON object")
                # PostgreSQL's text cannot hold NUL: one such line would fail its whole batch at the insert.
                if any("\x00" in str(value) for value in raw.values()):
                    raise ValueError("a NUL character (\\u0000) in the line")
                at = raw.get("at")
                ref = raw.get("ref")
                yield MemoryIn(
                    text=raw.get("text"),
                    subject=raw.get("subject"),
                    kind=raw.get("kind") or "customer_interaction",
                    at=datetime.fromisoformat(at) if isinstance(at, str) else at,
                    ref=None if ref is None else str(ref),
                    provenance=Provenance(source=source, line=number),
                )
            except (ValueError, ValidationError) as e:
                # A bad line is reported and skipped: the good lines of a large export still go in.
                reason = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
                field = ".".join(str(p) for p in e.errors()[0]["loc"]) if isinstance(e, ValidationError) else ""
                errors.append(f"line {number}: {field + ': ' if field else ''}{reason}")


def _import(memory: Any, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    path: Path = args.file
    if not path.is_file():
        print(f"no such file: {path}", file=sys.stderr)
        return 2
    with path.open("rb") as fh:
        total = sum(1 for line in fh if line.strip())
    errors: list[str] = []
    with tqdm(total=total, unit="memory", disable=args.no_progress, file=sys.stderr) as bar:
        records = memory.remember_many(
            _parse_lines(path, args.source or path.name, errors),
            batch_size=args.batch_size,
            progress=bar.update,
        )
        bar.update(len(errors))  # bad lines were read too
    counts = {"inserted": 0, "merged": 0, "versioned": 0}
    for r in records:
        counts[r.outcome or "inserted"] += 1
    for message in errors:
        print(message, file=sys.stderr)
    print(f"imported {len(records)} of {total} lines from {path}: {counts['inserted']} new, "
          f"{counts['merged']} merged into near-duplicates, {counts['versioned']} new versions, "
          f"{len(errors)} bad")
    return 1 if errors else 0


def _recall(memory: Any, args: argparse.Namespace) -> int:
    found = memory.recall(args.question, subject=args.subject, kind=args.kind, k=args.k,
                          include_history=args.history)
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in found], indent=2))
        return 0
    if not found:
        print("no memories match")
        return 0
    for rank, r in enumerate(found, start=1):
        source = r.source or "-"
        print(f"{rank:>2}. [{r.score:.4f}] {r.subject} / {r.kind.value} ref={r.ref or '-'} source={source} id={r.id}")
        print(f"    {r.text}")
    return 0


def _stats(memory: Any) -> int:
    s = memory.stats()
    print(f"memories: {s.total} ({s.current} current, {s.superseded} superseded, {s.tombstoned} forgotten)")
    for kind, count in sorted(s.by_kind.items()):
        print(f"  {kind}: {count}")
    print(f"size on disk: {s.bytes_on_disk / 2**20:.1f} MiB")
    if s.next_reclamation:
        print(f"next reclamation would remove {len(s.next_reclamation)}:")
        for r in s.next_reclamation:
            ended = f"{r.retention_until:%Y-%m-%d}"
            print(f"  id={r.id} ref={r.ref or '-'} {r.subject} / {r.kind.value} (retention ended {ended})")
    else:
        print("next reclamation would remove nothing")
    return 0


def _reclaim(memory: Any, stores: Any, args: argparse.Namespace) -> int:
    from orchestrator import Settings, build_services, upkeep

    # Through the orchestrator, so each removal is written to the audit log with it, on the services' clock.
    # (services.memory shares the process-wide embedder with `memory`: nothing is loaded twice)
    services = build_services(Settings(), stores)
    now = services.now()
    if args.dry_run:
        found = memory.reclaimable(now, limit=10_000)
        head = f"would remove {len(found)}" if found else "would remove nothing"
    else:
        found = upkeep.reclaim_memories(services, now)
        head = f"removed {len(found)}" if found else "removed nothing"
    print(head + (":" if found else ""))
    for r in found:
        ended = f"{r.retention_until:%Y-%m-%d}"
        print(f"  id={r.id} ref={r.ref or '-'} {r.subject} / {r.kind.value} (retention ended {ended})")
    return 0
