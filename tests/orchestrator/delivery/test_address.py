"""One addressing rule for what nobody asked for: home channel, else the last conversation, else the console."""
from __future__ import annotations

import pytest

from orchestrator import Message, MessageKind, Requester
from orchestrator.delivery import home_address, operator_address, post_scheduled


@pytest.mark.parametrize(("setting", "expected"), [
    ("slack:C123", ("slack", "C123")),
    ("telegram:42", ("telegram", "42")),
    ("console:console:local", ("console", "console:local")),
    (None, None),
    ("", None),
    ("slack", None),  # no conversation named: not an address
])
def test_home_address_reads_channel_and_conversation(setting, expected) -> None:
    assert home_address(setting) == expected


def test_with_no_home_and_no_request_yet_the_console_is_told(db) -> None:
    with db.connection() as conn:
        assert operator_address(conn, None) == ("console", "console:local")


def test_with_no_home_a_budget_alert_goes_where_the_operator_last_asked(services, db) -> None:
    """Proves the scheduler's alerts and a model call's alerts land in one place: both read this rule."""
    from orchestrator.chat import intake
    asked_from = Requester(identity="console:operator", channel="telegram", conversation="42")
    intake.start(services, asked_from, request="email ana@example.com about pricing", kind="outreach_email",
                 workflow="outreach_email", params={})
    alert = Message(kind=MessageKind.ALERT, title="Budget at 80 %")
    with db.connection() as conn, conn.transaction():
        assert operator_address(conn, None) == ("telegram", "42")
        assert operator_address(conn, "slack:C9") == ("slack", "C9")
        post_scheduled(conn, home=None, message=alert)
        row = conn.execute("SELECT channel, conversation FROM outbox WHERE kind = 'alert'").fetchone()
    assert (row["channel"], row["conversation"]) == ("telegram", "42")
