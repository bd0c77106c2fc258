"""Upgrades: a database made by the previous release is migrated to this one's schema at start and its work goes
on; a database migrated by a newer opsos is refused by name instead of being run by older code."""
from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from orchestrator import Decision, audit, jobs
from orchestrator.backup import postgres
from orchestrator.migrations import COMPONENTS, SchemaTooNew, migrate
from orchestrator.services import build_services
from orchestrator.stores import Stores
from tests.conftest import _database_url
from tests.orchestrator.helpers import OPERATOR, operations, pending_approval, run_state

PREVIOUS = Path(__file__).parent.parent / "fixtures" / "previous-release.pgdump"


@pytest.fixture
def previous_release(pg_admin_url: str) -> str:
    """A new database holding the previous release's dump, not yet migrated."""
    name = f"upgrade_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _database_url(pg_admin_url, name)
    postgres.restore(url, PREVIOUS)
    return url


def versions(conn) -> dict[str, int]:
    return {r["component"]: r["version"] for r in conn.execute(
        "SELECT component, max(version) AS version FROM schema_migrations GROUP BY component")}


def test_the_previous_release_is_migrated_and_its_waiting_run_finishes(previous_release, settings, redis,
                                                                        work) -> None:
    with psycopg.connect(previous_release, row_factory=dict_row) as conn:
        assert versions(conn) == {"connectors": 4, "memory": 2, "orchestrator": 11}
        applied = migrate(conn)
        assert applied and versions(conn) == {c: len(m) for c, m in COMPONENTS.items()}
        assert audit.verify(conn).ok, "the upgrade leaves the audit chain as it was"
    target = settings.model_copy(update={"database_url": previous_release})
    with ConnectionPool(previous_release, min_size=1, max_size=4, kwargs={"row_factory": dict_row}) as pool:
        upgraded = build_services(target, Stores(pool=pool, redis=redis, database_url=previous_release,
                                                 redis_url=target.redis_url))
        jobs.install(upgraded)
        try:
            operations(upgraded).decide(OPERATOR, pending_approval(pool, 1), Decision.APPROVED)
            work()
            assert run_state(pool, 1) == "succeeded"
            with pool.connection() as conn:
                assert audit.verify(conn).ok
        finally:
            jobs.install(None)


def test_a_database_migrated_by_a_newer_opsos_is_refused_by_name(db, database_url, redis_url, settings, monkeypatch,
                                                                 capsys) -> None:
    """A downgrade would run old code over records it does not know: the start-up stops and says why."""
    newer = len(COMPONENTS["orchestrator"]) + 1
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (component, version) VALUES ('orchestrator', %s)", (newer,))
    try:
        with psycopg.connect(database_url, row_factory=dict_row) as conn, pytest.raises(SchemaTooNew) as refused:
            migrate(conn)
        assert str(refused.value).startswith(
            f"the database's schema is newer than this opsos: orchestrator {newer} (this opsos knows {newer - 1})")
        from bot.cli import main

        for name, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url),
                            ("OPSOS_DATA_DIR", str(settings.data_dir))):
            monkeypatch.setenv(name, value)
        assert main(["audit", "verify"]) == 2
        assert "opsos: the database's schema is newer than this opsos" in capsys.readouterr().err
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM schema_migrations WHERE component = 'orchestrator' AND version = %s", (newer,))
