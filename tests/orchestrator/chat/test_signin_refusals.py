"""Refused sign-ins cost an attacker's tries nothing in the audit chain (review defect 4)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.chat import signin
from tests.orchestrator.helpers import count

NOW = datetime(2026, 3, 14, 9, tzinfo=UTC)
TTL = timedelta(hours=12)


def test_unknown_tokens_write_nothing(db) -> None:
    """Before, every POST /login/<anything> appended a permanent audit event under the chain's global lock."""
    with db.connection() as conn, conn.transaction():
        for n in range(50):
            assert signin.redeem(conn, f"forged-{n}", now=NOW, ttl=TTL) is None
    assert count(db, "audit_events") == 0


def test_a_real_link_used_again_is_audited_once_however_often_it_is_tried(db) -> None:
    with db.connection() as conn, conn.transaction():
        token = signin.issue(conn, identity="slack:U0OPERATOR", now=NOW, ttl=timedelta(minutes=15))
        assert signin.redeem(conn, token, now=NOW, ttl=TTL) is not None
        for _ in range(5):
            assert signin.redeem(conn, token, now=NOW + timedelta(minutes=1), ttl=TTL) is None
    assert count(db, "audit_events", "kind = 'dashboard.signin_refused'") == 1
    assert count(db, "audit_events", "kind = 'dashboard.signed_in'") == 1
