"""The dashboard link signs in as the operator: it is given only where only the operator reads (review defect 1)."""
from __future__ import annotations

import pytest

from bot import slack, telegram
from orchestrator import Requester
from tests.orchestrator.helpers import count, operations


@pytest.mark.parametrize(("who", "private"), [
    (slack.requester("U0OPERATOR", "D0DM"), True),
    (slack.requester("U0OPERATOR", "C0OPS"), False),
    (slack.requester("U0OPERATOR", "G0PRIVATEGROUP"), False),
    (telegram.requester(42, 42), True),
    (telegram.requester(42, -1001234), False),
])
def test_the_front_ends_say_which_conversations_are_private(who: Requester, private: bool) -> None:
    assert who.private is private


def test_in_a_shared_channel_the_link_is_withheld_and_no_sign_in_is_issued(services, db) -> None:
    """Before, `dashboard` in a channel posted the link there: whoever clicked first got a 12-hour session."""
    ops = operations(services)
    services.policy = services.policy.model_copy(update={"operators": frozenset({"slack:U0OPERATOR"})})
    reply = ops.handle_text(slack.requester("U0OPERATOR", "C0OPS"), "dashboard")
    assert "only in a direct message" in reply.title and "http" not in reply.plain_text()
    assert count(db, "audit_events", "kind = 'dashboard.link_issued'") == 0
    in_dm = ops.handle_text(slack.requester("U0OPERATOR", "D0DM"), "dashboard")
    assert "http" in in_dm.plain_text()
    assert count(db, "audit_events", "kind = 'dashboard.link_issued'") == 1
