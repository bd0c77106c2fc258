"""Schema migrations: an append-only list per component, applied on start-up and tracked in a table.

A migration's position in its list is its version. Never edit or reorder an applied one: add a new
one at the end, so a database made by an older opsos is upgraded in place, never dropped.

The orchestrator's own list is `orchestrator/schema.py`.
"""
from __future__ import annotations

import psycopg
import structlog

from connectors import MIGRATIONS as CONNECTOR_MIGRATIONS
from memory import MIGRATIONS as MEMORY_MIGRATIONS
from orchestrator.errors import OpsError
from orchestrator.schema import ORCHESTRATOR_MIGRATIONS

log = structlog.get_logger(__name__)


class SchemaTooNew(OpsError):
    """The database was migrated by a newer opsos: running this older code on it could misread or lose records."""

    def __init__(self, newer: dict[str, tuple[int, int]]) -> None:
        parts = ", ".join(f"{component} {have} (this opsos knows {known})"
                          for component, (have, known) in sorted(newer.items()))
        super().__init__(f"the database's schema is newer than this opsos: {parts}. Run the opsos that "
                         "migrated it (or a newer one); a downgrade is not supported")
        self.newer = newer


COMPONENTS: dict[str, list[str]] = {
    "connectors": CONNECTOR_MIGRATIONS,
    "memory": MEMORY_MIGRATIONS,
    "orchestrator": ORCHESTRATOR_MIGRATIONS,
}

CREATE_TRACKING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component   text NOT NULL,
    version     int NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""
# Looked up before CREATE ... IF NOT EXISTS, which PostgreSQL refuses a role without CREATE on the schema even when
# the table is there: the app role of a managed database (`database_roles`) starts with nothing to migrate.
TRACKING_EXISTS = "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_migrations'"
# One number for the whole schema, so two processes starting together cannot both migrate.
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(7242001)"


def migrate(conn: psycopg.Connection) -> list[tuple[str, int]]:
    """Apply every migration not yet recorded, each in the same transaction as its record."""
    applied_now: list[tuple[str, int]] = []
    with conn.transaction():
        conn.execute(MIGRATION_LOCK)
        if conn.execute(TRACKING_EXISTS).fetchone() is None:
            conn.execute(CREATE_TRACKING)
        rows = conn.execute("SELECT component, version FROM schema_migrations").fetchall()
        done = {(r["component"], r["version"]) if isinstance(r, dict) else (r[0], r[1]) for r in rows}
        highest: dict[str, int] = {}
        for component, version in done:
            highest[component] = max(highest.get(component, 0), version)
        newer = {component: (version, len(COMPONENTS.get(component, [])))
                 for component, version in highest.items() if version > len(COMPONENTS.get(component, []))}
        if newer:
            raise SchemaTooNew(newer)
        for component, migrations in COMPONENTS.items():
            for version, sql in enumerate(migrations, start=1):
                if (component, version) in done:
                    continue
                log.info("migration.apply", component=component, version=version)
                conn.execute(sql)
                conn.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (%s, %s)",
                    (component, version),
                )
                applied_now.append((component, version))
    return applied_now
