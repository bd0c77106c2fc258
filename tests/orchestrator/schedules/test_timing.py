"""Timings read from English or cron, table-driven: what is read, what is refused with which line, what is no
schedule at all, and the slots a cron expression gives in the operator's time zone."""
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from orchestrator.schedules import timing
from orchestrator.schedules.timing import Timing, Unreadable

BERLIN = ZoneInfo("Europe/Berlin")

READ = [
    ("every Monday at 9 send me a summary of new subscribers", "0 9 * * 1", "send me a summary of new subscribers"),
    ("every day at 18:00 categorise this month's transactions", "0 18 * * *", "categorise this month's transactions"),
    ("every first of the month at 9 write the newsletter", "0 9 1 * *", "write the newsletter"),
    ("every 15th of the month at noon write x", "0 12 15 * *", "write x"),
    ("every month on the 3rd at 10 write x", "0 10 3 * *", "write x"),
    ("every mon, wed and fri at 6:30 pm write x", "30 18 * * 1,3,5", "write x"),
    ("every Mondays and Thursdays at 9am write x", "0 9 * * 1,4", "write x"),
    ("every weekday at 8:30, write x", "30 8 * * 1-5", "write x"),
    ("every week on tuesday at 12am write x", "0 0 * * 2", "write x"),
    ("every 15 minutes check x", "*/15 * * * *", "check x"),
    ("every 2 hours check x", "0 */2 * * *", "check x"),
    ("every hour check x", "0 * * * *", "check x"),
    ("0 9 * * 1 write the newsletter", "0 9 * * 1", "write the newsletter"),
]


@pytest.mark.parametrize(("text", "cron", "request_"), READ)
def test_common_timings_and_cron_strings_are_read(text, cron, request_):
    assert timing.read(text) == Timing(cron=cron, request=request_)


REFUSED = [
    ("every blursday send me a summary", "“blursday” is not a day or a period I know"),
    ("every day at 25:00 send me a summary", "“25:00” is not a time of day"),
    ("every monday at 9:75 send x", "“9:75” is not a time of day"),
    ("every day at 13pm send x", "“13pm” is not a time of day"),
    ("every fortnight at 9 send x", "“fortnight” is not a day or a period I know"),
    ("every Monday send x", "say at what time, e.g. “every Monday at 9” or “every day at 18:00”"),
    ("every day at 9", "there is nothing after the timing to run"),
    ("every 7 minutes send x", "every 7 minutes does not divide the hour evenly; use 5, 10, 15, 20 or 30"),
    ("every minute send x", "every minute is too often for a schedule; the shortest is every 5 minutes"),
    ("every 31st of the month at 9 send x",
     "“31st of the month” is not a day every month has; use the 1st to the 28th"),
    ("every 2 weeks send x", "“every 2 weeks” is not a period I know"),
    ("0 25 * * * send x", "“0 25 * * *” is not a cron expression (minute hour day-of-month month day-of-week)"),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_timings_it_cannot_read_are_refused_with_the_reason(text, reason):
    assert timing.read(text) == Unreadable(reason)


@pytest.mark.parametrize("text", ["every customer who cancelled should get a win-back email", "email everyone",
                                  "write 5 blog posts about pricing", "launch a win-back campaign"])
def test_ordinary_requests_are_no_schedule(text):
    assert timing.read(text) is None


@pytest.mark.parametrize(("cron", "words"), [
    ("0 9 * * 1", "every Monday at 09:00"), ("0 18 * * *", "every day at 18:00"),
    ("0 9 1 * *", "on the 1st of every month at 09:00"), ("30 8 * * 1-5", "every weekday (Monday to Friday) at 08:30"),
    ("0 9 * * mon,thu", "every Monday and Thursday at 09:00"), ("*/15 * * * *", "every 15 minutes"),
    ("0 */2 * * *", "every 2 hours"), ("0 * * * *", "every hour, on the hour"),
    ("0 9 1-7 * 1", "at the times of the cron expression “0 9 1-7 * 1”"),
])
def test_a_cron_expression_is_said_in_words(cron, words):
    assert timing.describe(cron) == words


def test_slots_are_in_the_operator_time_zone_across_a_clock_change():
    # 09:00 in Berlin is 08:00 UTC before the spring change (29 March 2026) and 07:00 UTC after it.
    after = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    assert [t.astimezone(UTC).hour for t in timing.next_times("0 9 * * 1", BERLIN, after)] == [8, 7, 7]
    monday = datetime(2026, 3, 23, 8, 0, tzinfo=UTC)
    assert timing.latest_slot("0 9 * * 1", BERLIN, monday) == monday
    assert timing.count_between("0 9 * * *", BERLIN, monday, monday.replace(day=30, hour=7)) == 6
