"""`opsos route`: show which intent kind a request routes to, its confidence and the runners-up."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.router import KindRegistry, RouteResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "route",
        help="route a request to an intent kind (no side effects)",
        description="Classify requests against the intent-kind registry and print kind, confidence "
        "and runners-up. Nothing is started.",
    )
    parser.add_argument("text", nargs="?", help="the request, as the operator would type it in chat")
    parser.add_argument("--registry", type=Path, metavar="FILE", help="kinds TOML file (default: built-in)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per request")
    parser.add_argument(
        "--file", type=Path, metavar="FILE", help="route one request per line ('-' for stdin), one model load"
    )
    parser.add_argument(
        "--threshold", type=float, default=None, help="confidence below which nothing is guessed"
    )
    parser.set_defaults(run=run, default_log_level="warning")


def _read_requests(args: argparse.Namespace) -> list[str]:
    if args.file is None:
        return [args.text]
    text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text(encoding="utf-8")
    # Blank lines and '#' comments let an operator keep a commented list of test requests.
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _as_json(text: str, result: RouteResult, registry: KindRegistry) -> dict[str, Any]:
    return {
        "text": text,
        "kind": result.kind,
        "workflow": registry.get(result.kind).workflow if result.kind else None,
        "confidence": result.confidence,
        "in_scope": result.in_scope,
        "runners_up": [{"kind": name, "score": score} for name, score in result.runners_up],
    }


def _as_line(result: RouteResult) -> str:
    others = ", ".join(f"{name} {score:.2f}" for name, score in result.runners_up)
    if result.in_scope:
        return f"{result.kind}  {result.confidence:.2f}  (runners-up: {others})"
    return f"out of scope — closest: {others}"


def run(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.file is None):
        print("opsos route: give either a request text or --file FILE", file=sys.stderr)
        return 2
    # Imported here, not at module level: torch and sentence-transformers take seconds to import
    # and every other `opsos` command would pay for it.
    from agents.router import DEFAULT_THRESHOLD, KindRegistry, RegistryError, Router, default_registry_path
    from memory.embedder import get_embedder

    try:
        registry = KindRegistry.load(args.registry or default_registry_path())
        requests = _read_requests(args)
    except RegistryError as e:
        print(f"opsos route: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"opsos route: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 2
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    router = Router(registry, get_embedder(), threshold=threshold)
    results = router.route_many(requests)
    many = args.file is not None
    for text, result in zip(requests, results, strict=True):
        if args.json:
            print(json.dumps(_as_json(text, result, registry), ensure_ascii=False))
        elif many:
            print(f"{_as_line(result)}  ← {text}")
        else:
            print(_as_line(result))
    return 0
