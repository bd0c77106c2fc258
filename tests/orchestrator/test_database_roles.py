"""The managed-PostgreSQL role set-up: an owner migrates and owns the tables; the app role it makes can append
audit events and run opsos, but PostgreSQL itself refuses it every way of rewriting the log or switching its
triggers off."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.rows import dict_row

from orchestrator import audit, database_roles
from orchestrator.migrations import migrate
from tests.conftest import _database_url

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def _as(url: str, user: str) -> str:
    # pgserver's URL is postgresql://postgres:@/db?host=…: the same socket, another user (trust on the socket).
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:@{rest.split('@', 1)[1]}"


@pytest.fixture(scope="module")
def roles(pg_admin_url: str) -> Iterator[dict[str, str]]:
    """A database migrated by its owner role, then set up with `app_role_statements`; the URLs of both roles."""
    tag = uuid.uuid4().hex[:6]
    owner, app, name = f"t_owner_{tag}", f"t_app_{tag}", f"t_roles_{tag}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {owner} LOGIN")
        admin.execute(f'CREATE DATABASE "{name}" OWNER {owner}')
    admin_db = _database_url(pg_admin_url, name)
    with psycopg.connect(admin_db, autocommit=True) as admin:
        # A managed service's admin user creates the extension; the owner's migration then finds it there.
        admin.execute("CREATE EXTENSION vector")
    with psycopg.connect(_as(admin_db, owner), row_factory=dict_row) as conn:
        migrate(conn)
    with psycopg.connect(admin_db) as admin, admin.transaction():
        for statement in database_roles.app_role_statements(app_role=app, owner_role=owner):
            admin.execute(statement)
    yield {"admin": admin_db, "owner": _as(admin_db, owner), "app": _as(admin_db, app)}
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.execute(f"DROP ROLE {app}")
        admin.execute(f"DROP ROLE {owner}")


def _app(roles) -> psycopg.Connection:
    return psycopg.connect(roles["app"], autocommit=True, row_factory=dict_row)


def test_the_app_role_appends_audit_events_and_starts_like_any_opsos_process(roles):
    """The app role does its job: it appends to the chain, and the start-up migration check (nothing pending)
    passes without the right to create anything."""
    with _app(roles) as conn:
        assert migrate(conn) == []
        with conn.transaction():
            audit.append(conn, actor="tester", kind="test.event", payload={"n": 1}, at=T0)
        conn.execute("INSERT INTO schedule_slots (job, slot, claimed_at, claimed_by) VALUES ('t', now(), now(), 't')")
        assert audit.verify(conn).ok


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET actor = 'mallory'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
])
def test_the_app_role_may_not_change_audit_rows(roles, statement):
    """Proves defect 8's role half for the rows: refused by the grants (permission denied), before any trigger runs."""
    with _app(roles) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        conn.execute(statement)


@pytest.mark.parametrize("statement", [
    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
    "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    "DROP TRIGGER audit_events_append_only ON audit_events",
    "DROP TRIGGER audit_events_no_truncate ON audit_events",
    "CREATE OR REPLACE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN RETURN NEW; END $$",
    "SET session_replication_role = replica",
])
def test_the_app_role_may_not_switch_the_audit_triggers_off(roles, statement):
    """Proves defect 8's role half for the triggers: the app role owns nothing, so PostgreSQL refuses it the
    trigger's removal, its disabling, replacing its function and the replica mode that skips triggers."""
    with _app(roles) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_app_role_cannot_reuse_old_audit_ids_through_the_sequence(roles):
    with _app(roles) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT setval('audit_events_id_seq', 1)")


def test_the_owner_still_migrates_and_the_app_role_uses_a_table_added_later(roles):
    """A later migration run by the owner makes a table the app role may use, by the default privileges."""
    with psycopg.connect(roles["owner"], autocommit=True) as owner:
        owner.execute("CREATE TABLE later_table (id int)")
    with _app(roles) as conn:
        conn.execute("INSERT INTO later_table VALUES (1)")
        assert conn.execute("SELECT count(*) AS n FROM later_table").fetchone()["n"] == 1


def test_role_names_are_plain_identifiers_and_the_app_role_is_not_the_owner():
    with pytest.raises(ValueError, match="plain role name"):
        database_roles.app_role_statements(app_role="app; DROP TABLE x", owner_role="opsos_owner")
    with pytest.raises(ValueError, match="must not be the owner"):
        database_roles.app_role_statements(app_role="opsos", owner_role="opsos")


def test_opsos_db_roles_prints_the_statements(capsys):
    from bot.cli import main

    assert main(["db", "roles", "--app-role", "opsos_app"]) == 0
    out = capsys.readouterr().out
    assert "GRANT SELECT, INSERT ON audit_events TO opsos_app;" in out
    assert "REVOKE ALL ON audit_events FROM PUBLIC, opsos_app;" in out
