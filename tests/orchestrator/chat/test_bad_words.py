"""Words that look like a command or a date but are none: a clear answer, nothing written, no crashed handler."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.chat.commands import Command, parse
from orchestrator.errors import InvalidConstraint
from orchestrator.intents import parse_constraints
from tests.orchestrator.helpers import OPERATOR, count, operations


@pytest.mark.parametrize("text", ["status ¹", "pause ٣", "replay ²", "cancel 1²"])
def test_a_digit_that_is_not_ascii_is_no_run_number(text) -> None:
    """`str.isdigit()` says yes to "¹"; `int()` then raised inside the handler (review: `status ¹` crashed it)."""
    assert parse(text).command is Command.REQUEST


@pytest.mark.parametrize(("text", "command", "argument"), [
    ("status 12", Command.STATUS, "12"),
    ("pause #3", Command.PAUSE, "3"),
    ("replay 7", Command.REPLAY, "7"),
])
def test_ascii_run_numbers_still_name_runs(text, command, argument) -> None:
    assert (parse(text).command, parse(text).argument) == (command, argument)


def test_a_deadline_that_is_no_date_is_refused_by_name() -> None:
    with pytest.raises(InvalidConstraint, match="2026-02-30"):
        parse_constraints("send the invoices by 2026-02-30", now=datetime(2026, 1, 5, tzinfo=UTC),
                          default_budget=5.0, default_days=7)


def test_in_chat_an_impossible_deadline_is_answered_and_nothing_is_queued(services, db) -> None:
    """Proves `by 2026-02-30` no longer crashes the handler: a refusal that names the date, no intent, no run."""
    reply = operations(services).handle_text(OPERATOR, "launch a win-back campaign to lapsed subscribers by 2026-02-30")
    assert "“2026-02-30” is not a date in the calendar" in reply.title
    assert count(db, "intents") == 0 and count(db, "runs") == 0
    assert count(db, "audit_events", "kind = 'request.invalid'") == 1


def test_in_chat_status_with_a_superscript_is_not_a_crash(services, db) -> None:
    reply = operations(services).handle_text(OPERATOR, "status ¹")
    assert reply.title  # an answer (here: not understood as a request), not an exception
