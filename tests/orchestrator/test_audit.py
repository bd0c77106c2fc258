"""The audit log: hash-chained, verified, and append-only by PostgreSQL's own refusal."""
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from orchestrator import audit

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def _append_three(db):
    with db.connection() as conn, conn.transaction():
        for n in range(3):
            audit.append(conn, actor="tester", kind="test.event", payload={"n": n, "note": "ü ✓"},
                         at=T0 + timedelta(minutes=n))


def test_an_event_is_stamped_with_the_callers_clock_not_the_wall_clock(db):
    """Proves replay can compare times: each event carries the injected time it was given, hashed with it."""
    _append_three(db)
    with db.connection() as conn:
        stamped = [row["at"] for row in conn.execute("SELECT at FROM audit_events ORDER BY id").fetchall()]
        assert audit.verify(conn).ok
    assert stamped == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]


def test_chain_of_appended_events_verifies(db):
    _append_three(db)
    with db.connection() as conn:
        report = audit.verify(conn)
    assert report.ok and report.checked == 3


def test_each_event_links_to_the_hash_of_the_one_before(db):
    _append_three(db)
    with db.connection() as conn:
        events = audit.events(conn)
    assert events[0].prev_hash == audit.GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]


def test_update_on_the_audit_table_is_refused_by_postgresql(db):
    _append_three(db)
    with db.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE id = 1")


def test_delete_and_truncate_on_the_audit_table_are_refused(db):
    _append_three(db)
    with db.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM audit_events")
    with db.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("TRUNCATE audit_events")


def _as_superuser_without_triggers(database_url: str, sql: str) -> None:
    # What an attacker with superuser rights could do: switch the triggers off and edit history.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql)


def test_a_tampered_event_is_named_as_the_first_broken_link(db, database_url):
    _append_three(db)
    _as_superuser_without_triggers(database_url, """UPDATE audit_events SET payload = '{"n": 99}' WHERE id = 2""")
    with db.connection() as conn:
        report = audit.verify(conn)
    assert not report.ok
    assert report.first_broken_id == 2
    assert "altered" in report.problem


def test_a_removed_event_breaks_the_link_of_the_next_one(db, database_url):
    _append_three(db)
    _as_superuser_without_triggers(database_url, "DELETE FROM audit_events WHERE id = 2")
    with db.connection() as conn:
        report = audit.verify(conn)
    assert not report.ok and report.first_broken_id == 3
    assert "removed" in report.problem


def test_opsos_audit_verify_exits_non_zero_and_names_the_broken_event(db, database_url, redis_url, monkeypatch, capsys,
                                                                     tmp_path):
    from bot.cli import main

    _append_three(db)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OPSOS_DATA_DIR", str(tmp_path))
    assert main(["audit", "verify"]) == 0
    assert "Chain verified: 3 events" in capsys.readouterr().out
    _as_superuser_without_triggers(database_url, "UPDATE audit_events SET actor = 'mallory' WHERE id = 3")
    assert main(["audit", "verify"]) == 1
    assert "BROKEN at event 3" in capsys.readouterr().out
