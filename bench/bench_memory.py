"""Benchmark of long-term memory's vector index: insert throughput, HNSW recall@10 and query latency.

    python -m bench.bench_memory [--n 100000] [--queries 200] [--data clustered|uniform]
                                 [--query-cosine 0.45] [--settings 16:64,16:128] [--ef-search 40,100]

Runs against DATABASE_URL if set, else a throw-away embedded PostgreSQL (pgserver) in a temp
folder. Vectors are synthetic unit vectors (embedding text at this scale would measure the model,
not the index); "clustered" mimics the topical clumps of real sentence embeddings, "uniform" is the
hard case where every point is nearly equidistant. Ground truth is exact search in numpy.
1M is not run yet: on 2 shared cores the COPY plus an HNSW build at ef_construction 128 takes
hours; run it with --n 1000000 --settings 16:128 when the machine is free.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from memory.schema import MIGRATIONS

DIM = 384
SETTINGS = [(16, 64), (16, 128), (24, 128)]  # (m, ef_construction)
EF_SEARCH = [40, 100, 200]

DROP_INDEX = "DROP INDEX IF EXISTS memories_embedding_hnsw"
CREATE_INDEX = """
CREATE INDEX memories_embedding_hnsw ON memories USING hnsw (embedding vector_cosine_ops)
    WITH (m = {m}, ef_construction = {efc}) WHERE current AND forgotten_at IS NULL
"""
# The same statement shape as LongTermMemory's vector leg, so the planner makes the same choice.
ANN_QUERY = """
SELECT id FROM memories WHERE current AND forgotten_at IS NULL
ORDER BY embedding <=> %s LIMIT 10
"""
EXACT_QUERY = """
SELECT id FROM memories WHERE current AND forgotten_at IS NULL
ORDER BY (embedding <=> %s) + 0 LIMIT 10
"""
COPY = "COPY memories (id, text, embedding, kind, subject) FROM STDIN WITH (FORMAT BINARY)"
INSERT = "INSERT INTO memories (id, text, embedding, kind, subject) VALUES (%s, %s, %s, %s, %s)"
KINDS = ["customer_interaction", "decision", "policy", "outcome", "summary", "fact"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def synthetic(n: int, *, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        x = rng.standard_normal((n, DIM), dtype=np.float32)
    else:
        # ~1 topic per 100 memories, each point its topic's centre plus noise of similar size.
        centres = rng.standard_normal((max(1, n // 100), DIM), dtype=np.float32)
        x = centres[rng.integers(0, len(centres), n)] + 0.9 * rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def database_url() -> tuple[str, object | None]:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"], None
    import pgserver

    server = pgserver.get_server(tempfile.mkdtemp(prefix="opsos-bench-"), cleanup_mode="delete")
    return server.get_uri(), server


def fresh_database(admin_url: str) -> str:
    name = f"bench_memory_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, query = admin_url.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in MIGRATIONS:
            conn.execute(sql)
        conn.execute(DROP_INDEX)  # bulk load first, index after: the way an import of history goes
    return url


def load(conn: psycopg.Connection, vectors: np.ndarray) -> float:
    n = len(vectors)
    started = time.perf_counter()
    with conn.cursor() as cur, cur.copy(COPY) as copy:
        copy.set_types(["bigint", "text", "vector", "text", "text"])
        for i in range(n):
            copy.write_row((i + 1, f"synthetic memory {i}", vectors[i], KINDS[i % 6], f"subject-{i % 5000}"))
            if (i + 1) % 20000 == 0:
                log(f"  copied {i + 1}/{n}")
    conn.commit()
    return n / (time.perf_counter() - started)


def indexed_inserts(conn: psycopg.Connection, vectors: np.ndarray, first_id: int) -> float:
    """Inserts into the indexed table, one transaction per batch, as remember_many writes."""
    started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(INSERT, [(first_id + i, f"extra {i}", v, "fact", "subject-extra")
                                 for i, v in enumerate(vectors)])
    conn.commit()
    elapsed = time.perf_counter() - started
    with conn.cursor() as cur:
        cur.execute("DELETE FROM memories WHERE id >= %s", (first_id,))
    conn.commit()
    return len(vectors) / elapsed


def timed_queries(conn: psycopg.Connection, sql: str, queries: np.ndarray) -> tuple[list[list[int]], list[float]]:
    results, latencies = [], []
    for q in queries:
        started = time.perf_counter()
        rows = conn.execute(sql, (q,)).fetchall()
        latencies.append((time.perf_counter() - started) * 1000)
        results.append([r[0] for r in rows])
    conn.commit()
    return results, latencies


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--data", choices=["clustered", "uniform"], default="clustered")
    ap.add_argument("--query-cosine", type=float, default=0.45,
                    help="cosine between a query and the memory it was made from")
    ap.add_argument("--settings", default=",".join(f"{m}:{e}" for m, e in SETTINGS),
                    help="m:ef_construction pairs, comma-separated")
    ap.add_argument("--ef-search", default=",".join(map(str, EF_SEARCH)))
    args = ap.parse_args(argv)
    settings = [tuple(int(x) for x in s.split(":")) for s in args.settings.split(",")]
    ef_values = [int(x) for x in args.ef_search.split(",")]

    log(f"generating {args.n} {args.data} vectors of {DIM} dimensions")
    data = synthetic(args.n, kind=args.data, seed=1)
    # Queries near the data (a perturbed stored vector), as a recall question is near its answer.
    rng = np.random.default_rng(2)
    picks = data[rng.integers(0, args.n, args.queries)]
    # Orthogonal-ish noise of norm sigma puts the query at cosine 1/sqrt(1 + sigma²) from the memory
    # it came from. MiniLM scores a question against the note that answers it at ~0.4-0.6, hence 0.45.
    sigma = float(np.sqrt(1 / args.query_cosine**2 - 1))
    queries = picks + sigma * rng.standard_normal(picks.shape, dtype=np.float32) / np.sqrt(DIM)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = [list(np.argsort(-(data @ q))[:10] + 1) for q in queries]

    admin_url, server = database_url()
    url = fresh_database(admin_url)
    # Autocommit: every statement is its own transaction, as each live memory write would be.
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        # The whole graph in memory: at 1M rows (m=16) it is about 2.5 GB, and a build that spills is far slower.
        conn.execute("SET maintenance_work_mem = '6GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")  # 2 cores: the leader plus one
        log("bulk load (COPY binary, no vector index)")
        copy_rate = load(conn, data)
        conn.execute("VACUUM ANALYZE memories")
        conn.commit()
        log(f"COPY: {copy_rate:,.0f} rows/s")

        exact, exact_ms = timed_queries(conn, EXACT_QUERY, queries[:20])
        exact_recall = statistics.mean(len(set(a) & set(t)) / 10 for a, t in zip(exact, truth[:20], strict=True))
        log(f"exact search in PostgreSQL: p50 {pct(exact_ms, 50):.1f} ms, p95 {pct(exact_ms, 95):.1f} ms "
            f"(agrees with numpy: {exact_recall:.3f})")

        rows = []
        for m, efc in settings:
            conn.execute(DROP_INDEX)
            log(f"building HNSW m={m} ef_construction={efc}")
            started = time.perf_counter()
            conn.execute(CREATE_INDEX.format(m=m, efc=efc))
            conn.commit()
            build_s = time.perf_counter() - started
            size = conn.execute("SELECT pg_relation_size('memories_embedding_hnsw')").fetchone()[0]
            log(f"  built in {build_s:.1f} s, {size / 2**20:.0f} MiB")
            insert_rate = indexed_inserts(conn, synthetic(2000, kind=args.data, seed=3), args.n + 1)
            log(f"  inserts with the index live: {insert_rate:,.0f} rows/s")
            for ef in ef_values:
                conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef),))
                timed_queries(conn, ANN_QUERY, queries[:20])  # warm the index into shared buffers
                found, ms = timed_queries(conn, ANN_QUERY, queries)
                recall = statistics.mean(len(set(a) & set(t)) / 10 for a, t in zip(found, truth, strict=True))
                rows.append((m, efc, ef, recall, pct(ms, 50), pct(ms, 95), build_s, insert_rate))
                log(f"  ef_search={ef}: recall@10 {recall:.3f}, p50 {pct(ms, 50):.2f} ms, p95 {pct(ms, 95):.2f} ms")

    print()
    print(f"n={args.n} data={args.data} query cosine={args.query_cosine} queries={args.queries} "
          f"copy={copy_rate:,.0f} rows/s "
          f"exact p50={pct(exact_ms, 50):.1f} ms p95={pct(exact_ms, 95):.1f} ms")
    print("| m | ef_construction | ef_search | recall@10 | p50 ms | p95 ms | build s | indexed inserts/s |")
    print("|---|---|---|---|---|---|---|---|")
    for m, efc, ef, recall, p50, p95, build_s, rate in rows:
        print(f"| {m} | {efc} | {ef} | {recall:.3f} | {p50:.2f} | {p95:.2f} | {build_s:.1f} | {rate:,.0f} |")
    del server
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
