"""The budget and deadline a request states, table-driven: what `parse_constraints` reads, and its defaults."""
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.errors import InvalidConstraint
from orchestrator.intents import Constraints, parse_constraints
from tests.orchestrator.helpers import OPERATOR, WINBACK, count, operations

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
BUDGET, DAYS = 25.0, 7
DEFAULT_DEADLINE = NOW + timedelta(days=DAYS)


def _read(text: str, now: datetime = NOW) -> Constraints:
    return parse_constraints(text, now=now, default_budget=BUDGET, default_days=DAYS)


@pytest.mark.parametrize(("text", "budget", "deadline"), [
    pytest.param("", BUDGET, DEFAULT_DEADLINE, id="empty text takes both defaults"),
    pytest.param(WINBACK, BUDGET, DEFAULT_DEADLINE, id="a request stating neither"),
    pytest.param("launch it, budget $20", 20.0, DEFAULT_DEADLINE, id="budget in dollars"),
    pytest.param("Budget of 12.50 please", 12.5, DEFAULT_DEADLINE, id="budget of, with cents"),
    pytest.param("BUDGET $30", 30.0, DEFAULT_DEADLINE, id="budget in capitals"),
    pytest.param("cap 40", 40.0, DEFAULT_DEADLINE, id="cap"),
    pytest.param("spend $15 on ads", 15.0, DEFAULT_DEADLINE, id="a bare dollar amount"),
    pytest.param("budget $20.999", 20.99, DEFAULT_DEADLINE, id="cents past two digits are cut off"),
    pytest.param("budget $0", BUDGET, DEFAULT_DEADLINE, id="a zero budget falls back to the default"),
    pytest.param("grow MRR by 20%", BUDGET, DEFAULT_DEADLINE, id="a percentage is no budget"),
    pytest.param("within 2 weeks", BUDGET, NOW + timedelta(weeks=2), id="within weeks"),
    pytest.param("Within 3 DAYS", BUDGET, NOW + timedelta(days=3), id="within days, mixed case"),
    pytest.param("within 1 day", BUDGET, NOW + timedelta(days=1), id="within one day, singular"),
    pytest.param("within 0 days", BUDGET, NOW, id="within zero days is due now"),
    pytest.param("within 1000 days", BUDGET, DEFAULT_DEADLINE, id="four digits are not read"),
    pytest.param("by 2026-12-01", BUDGET, datetime(2026, 12, 1, 23, 59, tzinfo=UTC), id="by a date, end of day"),
    pytest.param("by 2026-3-1", BUDGET, DEFAULT_DEADLINE, id="a date without leading zeros is not read"),
    pytest.param("within 2 days, by 2026-12-01", BUDGET, NOW + timedelta(days=2), id="within wins over by"),
    pytest.param("budget $20 within 1 week", 20.0, NOW + timedelta(weeks=1), id="budget and deadline together"),
])
def test_parse_constraints(text: str, budget: float, deadline: datetime) -> None:
    assert _read(text) == Constraints(budget_usd=budget, deadline=deadline)


def test_a_date_ends_in_the_zone_of_now() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert _read("by 2026-12-01", now=NOW.astimezone(berlin)).deadline == datetime(2026, 12, 1, 23, 59, tzinfo=berlin)


@pytest.mark.parametrize("text", ["by 2026-02-30", "by 2026-13-01", "by 2026-04-31"])
def test_a_date_that_does_not_exist_is_refused_by_name(text: str) -> None:
    """The regex takes any dddd-dd-dd; a day the calendar lacks is an InvalidConstraint naming it."""
    with pytest.raises(InvalidConstraint, match=text.removeprefix("by ")):
        _read(text)


def test_a_request_by_a_date_that_does_not_exist_is_answered_and_creates_nothing(services, db) -> None:
    reply = operations(services).submit(OPERATOR, f"{WINBACK} by 2026-02-30")
    assert "“2026-02-30” is not a date in the calendar" in reply.title
    assert count(db, "intents") == 0
