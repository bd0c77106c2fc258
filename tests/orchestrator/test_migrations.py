"""Migrations: tracked, applied once, and an older database is upgraded in place with its data kept."""
import uuid

import psycopg
from psycopg.rows import dict_row

from orchestrator import migrations
from tests.conftest import _database_url


def _fresh(pg_admin_url: str) -> str:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return _database_url(pg_admin_url, name)


def test_migrating_twice_applies_nothing_the_second_time(pg_admin_url):
    url = _fresh(pg_admin_url)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        first = migrations.migrate(conn)
        second = migrations.migrate(conn)
    assert ("orchestrator", 1) in first and second == []


def test_database_of_an_older_version_is_upgraded_and_keeps_its_data(pg_admin_url, monkeypatch):
    url = _fresh(pg_admin_url)
    upgrade = "CREATE TABLE upgrade_probe (id int)"
    older = {name: list(steps) for name, steps in migrations.COMPONENTS.items()}
    monkeypatch.setattr(migrations, "COMPONENTS", older)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        migrations.migrate(conn)
        conn.execute("INSERT INTO crm_contacts (id, email, name, plan, status, monthly_cents)"
                     " VALUES ('c-1', 'a@example.com', 'A', 'monthly', 'lapsed', 100)")
        conn.commit()
    newer = {name: [*steps, upgrade] if name == "orchestrator" else steps for name, steps in older.items()}
    monkeypatch.setattr(migrations, "COMPONENTS", newer)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        applied = migrations.migrate(conn)
        assert applied == [("orchestrator", len(newer["orchestrator"]))]
        assert conn.execute("SELECT count(*) AS n FROM crm_contacts").fetchone()["n"] == 1
        assert conn.execute("SELECT count(*) AS n FROM upgrade_probe").fetchone()["n"] == 0


def test_pgvector_is_available_after_migration(db):
    with db.connection() as conn:
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        distance = conn.execute("SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector AS d").fetchone()["d"]
    assert version is not None and distance == 1.0


def test_books_made_before_the_move_reach_the_books_connector_with_their_ids(pg_admin_url, monkeypatch):
    """Orchestrator migration 6 moves `book_transactions` into the connectors' `books_transactions`."""
    url = _fresh(pg_admin_url)
    full = dict(migrations.COMPONENTS)
    before = {**full, "connectors": full["connectors"][:1], "orchestrator": full["orchestrator"][:5]}
    monkeypatch.setattr(migrations, "COMPONENTS", before)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        migrations.migrate(conn)
        for ref in ("b1", "b2", "b3"):
            conn.execute("INSERT INTO book_transactions (source, ref, at, amount_cents)"
                         " VALUES ('bank', %s, now(), -100)", (ref,))
        conn.execute("DELETE FROM book_transactions WHERE ref = 'b1'")
        conn.execute("UPDATE book_transactions SET category = 'hosting', categorised_by = 'agent' WHERE ref = 'b2'")
        conn.commit()
    monkeypatch.setattr(migrations, "COMPONENTS", full)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        # Every later version of each component, whatever migrations have been appended since this one.
        later = [("connectors", v) for v in range(2, len(full["connectors"]) + 1)]
        later += [("orchestrator", v) for v in range(6, len(full["orchestrator"]) + 1)]
        assert migrations.migrate(conn) == later
        rows = conn.execute("SELECT id, ref, category, categorised_by FROM books_transactions ORDER BY id").fetchall()
        assert rows == [{"id": 2, "ref": "b2", "category": "hosting", "categorised_by": "agent"},
                        {"id": 3, "ref": "b3", "category": None, "categorised_by": None}]
        added = conn.execute("INSERT INTO books_transactions (source, ref, at, amount_cents)"
                             " VALUES ('bank', 'b4', now(), -100) RETURNING id").fetchone()
        assert added["id"] == 4
        assert conn.execute("SELECT to_regclass('book_transactions') AS t").fetchone()["t"] is None
