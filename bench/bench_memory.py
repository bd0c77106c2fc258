"""Benchmark of long-term memory's vector index: insert throughput, HNSW recall@10 and query latency.

    python -m bench.bench_memory [--n 100000] [--queries 200] [--data clustered|uniform]
                                 [--query-cosine 0.45] [--settings 16:64,16:128] [--ef-search 40,100]
                                 [--shared-buffers 4GB] [--pgdata DIR]

Runs against DATABASE_URL if set, else an embedded PostgreSQL (pgserver): a throw-away one in a
temp folder, or with --pgdata one kept in DIR, so that a second run reuses the loaded table and the
last index built (a 1M build takes half an hour on 2 cores) and only re-runs the queries.
Vectors are synthetic unit vectors (embedding text at this scale would measure the model, not the
index); "clustered" mimics the topical clumps of real sentence embeddings, "uniform" is the hard
case where every point is nearly equidistant. Ground truth is exact search in numpy.
Latency is measured twice per ef_search: "cold" is the first pass, its index pages read from the
OS page cache; "warm" is the second, with the pages in shared buffers, the steady state of a server
whose shared_buffers hold the index (hence --shared-buffers for the embedded server).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from memory.schema import MIGRATIONS
from orchestrator.stores import size_shared_buffers

DIM = 384
SETTINGS = [(16, 64), (16, 128), (24, 128)]  # (m, ef_construction)
EF_SEARCH = [40, 100, 200]

DROP_INDEX = "DROP INDEX IF EXISTS memories_embedding_hnsw"
# What the index was built with, so that a kept database knows whether its index can be reused.
BUILDS = """
CREATE TABLE IF NOT EXISTS bench_builds (m int, ef_construction int, seconds float8, PRIMARY KEY (m, ef_construction))
"""
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


def exact_top10(data: np.ndarray, queries: np.ndarray, batch: int = 64) -> list[list[int]]:
    """Ids (1-based, as loaded) of each query's 10 nearest by cosine, best first: one matrix product per batch."""
    found: list[list[int]] = []
    for start in range(0, len(queries), batch):
        scores = queries[start:start + batch] @ data.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        for row, ids in zip(scores, top, strict=True):
            found.append([int(i) + 1 for i in ids[np.argsort(-row[ids])]])
    return found


def database_url(pgdata: str | None, shared_buffers: str | None) -> tuple[str, object | None]:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"], None
    import pgserver

    if pgdata:
        Path(pgdata).mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata)
    else:
        server = pgserver.get_server(tempfile.mkdtemp(prefix="opsos-bench-"), cleanup_mode="delete")
    if shared_buffers:
        log(f"shared_buffers = {shared_buffers} (the embedded server restarts if that is a change)")
        size_shared_buffers(server, shared_buffers)
    return server.get_uri(), server


def database(admin_url: str, *, name: str | None) -> tuple[str, bool]:
    """The bench database's URL, and whether it is new (a kept one has its rows loaded already)."""
    name = name or f"bench_memory_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    base, _, query = admin_url.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    if not exists:
        with psycopg.connect(url, autocommit=True) as conn:
            for sql in MIGRATIONS:
                conn.execute(sql)
            conn.execute(DROP_INDEX)  # bulk load first, index after: the way an import of history goes
            conn.execute(BUILDS)
    return url, not exists


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


def built_index(conn: psycopg.Connection, m: int, efc: int) -> float | None:
    """The build time of the index in place if it was built with these settings, else None (and no index)."""
    row = conn.execute("SELECT seconds FROM bench_builds WHERE m = %s AND ef_construction = %s", (m, efc)).fetchone()
    present = conn.execute("SELECT to_regclass('memories_embedding_hnsw') IS NOT NULL").fetchone()[0]
    if row and present:
        return float(row[0])
    conn.execute(DROP_INDEX)
    conn.execute("DELETE FROM bench_builds")
    return None


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
    ap.add_argument("--shared-buffers", help="for the embedded server, e.g. 4GB: enough to hold the index")
    ap.add_argument("--pgdata", help="keep the embedded server's data here and reuse its table and index")
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
    log(f"exact top-10 of {args.queries} queries in numpy (the ground truth)")
    truth = exact_top10(data, queries)

    admin_url, server = database_url(args.pgdata, args.shared_buffers)
    url, new = database(admin_url, name=f"bench_memory_{args.data}_{args.n}" if args.pgdata else None)
    # Autocommit: every statement is its own transaction, as each live memory write would be.
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        log(f"shared_buffers = {conn.execute('SHOW shared_buffers').fetchone()[0]}")
        # The whole graph in memory: at 1M rows (m=16) it is about 2.5 GB, and a build that spills is far slower.
        conn.execute("SET maintenance_work_mem = '6GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")  # 2 cores: the leader plus one
        if new:
            log("bulk load (COPY binary, no vector index)")
            copy_rate = load(conn, data)
            conn.execute("VACUUM ANALYZE memories")
            log(f"COPY: {copy_rate:,.0f} rows/s")
        else:
            copy_rate = float("nan")
            log(f"reusing the {conn.execute('SELECT count(*) FROM memories').fetchone()[0]} rows kept in {args.pgdata}")

        exact, exact_ms = timed_queries(conn, EXACT_QUERY, queries[:20])
        exact_recall = statistics.mean(len(set(a) & set(t)) / 10 for a, t in zip(exact, truth[:20], strict=True))
        log(f"exact search in PostgreSQL: p50 {pct(exact_ms, 50):.1f} ms, p95 {pct(exact_ms, 95):.1f} ms "
            f"(agrees with numpy: {exact_recall:.3f})")

        rows = []
        for m, efc in settings:
            build_s = built_index(conn, m, efc)
            if build_s is None:
                log(f"building HNSW m={m} ef_construction={efc}")
                started = time.perf_counter()
                conn.execute(CREATE_INDEX.format(m=m, efc=efc))
                build_s = time.perf_counter() - started
                conn.execute("INSERT INTO bench_builds VALUES (%s, %s, %s)", (m, efc, build_s))
            else:
                log(f"reusing the HNSW index m={m} ef_construction={efc} (built in {build_s:.1f} s)")
            size = conn.execute("SELECT pg_relation_size('memories_embedding_hnsw')").fetchone()[0]
            log(f"  built in {build_s:.1f} s, {size / 2**20:.0f} MiB")
            insert_rate = indexed_inserts(conn, synthetic(2000, kind=args.data, seed=3), args.n + 1)
            log(f"  inserts with the index live: {insert_rate:,.0f} rows/s")
            for ef in ef_values:
                conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef),))
                _, cold_ms = timed_queries(conn, ANN_QUERY, queries)
                found, ms = timed_queries(conn, ANN_QUERY, queries)
                per_query = [len(set(a) & set(t)) / 10 for a, t in zip(found, truth, strict=True)]
                recall = statistics.mean(per_query)
                # A mean hides whether misses are spread thin or whole queries are lost in the wrong clump.
                lost = sum(r < 0.5 for r in per_query) / len(per_query)
                rows.append((m, efc, ef, recall, lost, pct(cold_ms, 95), pct(ms, 50), pct(ms, 95), build_s,
                             insert_rate))
                log(f"  ef_search={ef}: recall@10 {recall:.3f} (queries under 0.5: {lost:.1%}), "
                    f"cold p95 {pct(cold_ms, 95):.2f} ms, warm p50 {pct(ms, 50):.2f} ms, p95 {pct(ms, 95):.2f} ms")

    print()
    print(f"n={args.n} data={args.data} query cosine={args.query_cosine} queries={args.queries} "
          f"copy={copy_rate:,.0f} rows/s "
          f"exact p50={pct(exact_ms, 50):.1f} ms p95={pct(exact_ms, 95):.1f} ms")
    print("| m | ef_construction | ef_search | recall@10 | queries < 0.5 | cold p95 ms | p50 ms | p95 ms "
          "| build s | indexed inserts/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m, efc, ef, recall, lost, cold95, p50, p95, build_s, rate in rows:
        print(f"| {m} | {efc} | {ef} | {recall:.3f} | {lost:.1%} | {cold95:.2f} | {p50:.2f} | {p95:.2f} "
              f"| {build_s:.1f} | {rate:,.0f} |")
    del server
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
