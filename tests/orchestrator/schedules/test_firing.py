"""Schedules made in chat, end to end on the embedded stack: refused timings, confirmation before anything is
stored, once per slot across schedulers, one catch-up after downtime, the budget cap, failing runs pausing it."""
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator import buttons, scheduler
from orchestrator.schedules import firing
from tests.concurrency import at_once
from tests.orchestrator.helpers import OPERATOR, count, operations

BERLIN = ZoneInfo("Europe/Berlin")
# A Tuesday noon in Berlin; the schedule's Mondays at 09:00 follow it.
MADE = datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN).astimezone(UTC)
MONDAY = datetime(2026, 3, 16, 9, 0, tzinfo=BERLIN).astimezone(UTC)
WEEKLY = "every Monday at 9 write this week's newsletter"


@pytest.fixture
def berlin(services):
    services.settings.timezone = "Europe/Berlin"
    _at(services, MADE)
    return services


def _at(services, moment: datetime) -> None:
    services.clock = lambda: moment


def _offer_token(reply) -> str:
    [button] = reply.actions
    return button.value.removeprefix("confirm:")


def _pressed(reply) -> str:
    """What a front end passes on when the operator presses the offer's button (see `bot/telegram.py`)."""
    [button] = reply.actions
    return buttons.read(button.value).as_text()


def _make(services, text: str = WEEKLY) -> int:
    ops = operations(services)
    reply = ops.handle_text(OPERATOR, text)
    confirmed = ops.handle_text(OPERATOR, _pressed(reply))
    assert confirmed.title.startswith("Scheduled as #"), confirmed.title
    return int(confirmed.title.removeprefix("Scheduled as #").split(":")[0])


@pytest.mark.parametrize(("text", "line"), [
    ("every blursday send me a summary of new subscribers",
     "I can't read when to run that: “blursday” is not a day or a period I know. Nothing was scheduled."),
    ("every day at 25:00 write this week's newsletter",
     "I can't read when to run that: “25:00” is not a time of day. Nothing was scheduled."),
])
def test_a_timing_it_cannot_read_is_refused_with_examples_and_nothing_stored(berlin, db, text, line):
    reply = operations(berlin).handle_text(OPERATOR, text)
    assert reply.title == line
    assert "“every Monday at 9 write this week's newsletter”" in reply.text
    assert count(db, "schedules") == 0 and count(db, "intents") == 0
    assert count(db, "audit_events", "kind = 'schedule.refused'") == 1


def test_a_schedule_is_shown_back_and_stored_only_once_confirmed(berlin, db):
    ops = operations(berlin)
    reply = ops.handle_text(OPERATOR, WEEKLY + ", budget $6 a month")
    text = reply.plain_text()
    assert reply.title.startswith("Schedule this? Every Monday at 09:00 (Europe/Berlin), I would run the ")
    assert "Next: Mon 16 Mar 2026 09:00; Mon 23 Mar 2026 09:00; Mon 30 Mar 2026 09:00" in text
    assert "Runs: " in text and "“write this week's newsletter”" in text
    assert "Budget: $6.00 a month for this schedule; each run up to $2.00" in text
    assert count(db, "schedules") == 0 and count(db, "intents") == 0
    token = _offer_token(reply)
    confirmed = ops.handle_text(OPERATOR, f"confirm {token}")
    assert confirmed.title == "Scheduled as #1: every Monday at 09:00 (Europe/Berlin)."
    # A second click on the same Confirm stores nothing more.
    assert ops.handle_text(OPERATOR, f"confirm {token}").title == "Already scheduled: that is schedule #1."
    with db.connection() as conn:
        [row] = conn.execute("SELECT * FROM schedules").fetchall()
    assert (row["cron"], row["timezone"], row["request"]) == ("0 9 * * 1", "Europe/Berlin",
                                                             "write this week's newsletter")
    assert float(row["budget_monthly_usd"]) == 6.0
    assert count(db, "audit_events", "kind = 'schedule.created'") == 1


def test_two_clicks_on_confirm_at_once_store_one_schedule(berlin, db):
    ops = operations(berlin)
    pressed = _pressed(ops.handle_text(OPERATOR, WEEKLY))
    replies = at_once([lambda: ops.handle_text(OPERATOR, pressed)] * 3)
    assert sorted(r.title for r in replies) == ["Already scheduled: that is schedule #1."] * 2 + [
        "Scheduled as #1: every Monday at 09:00 (Europe/Berlin)."]
    assert count(db, "schedules") == 1 and count(db, "audit_events", "kind = 'schedule.created'") == 1


def test_a_raw_cron_string_is_a_schedule_said_in_words(berlin, db):
    reply = operations(berlin).handle_text(OPERATOR, "0 18 * * 1-5 write this week's newsletter")
    assert reply.title.startswith("Schedule this? Every weekday (Monday to Friday) at 18:00 (Europe/Berlin)")
    assert "cron “0 18 * * 1-5”" in reply.plain_text()
    assert "Next: Tue 10 Mar 2026 18:00; Wed 11 Mar 2026 18:00; Thu 12 Mar 2026 18:00" in reply.plain_text()


def test_a_lapsed_offer_stores_nothing(berlin, db, redis):
    reply = operations(berlin).handle_text(OPERATOR, WEEKLY)
    redis.flushdb()
    confirmed = operations(berlin).handle_text(OPERATOR, f"confirm {_offer_token(reply)}")
    assert confirmed.title.startswith("That schedule offer has lapsed")
    assert count(db, "schedules") == 0


def test_two_schedulers_racing_fire_a_slot_once(berlin, db):
    schedule_id = _make(berlin)
    now = MONDAY + timedelta(seconds=20)
    results = at_once([lambda: firing.tend(berlin, schedule_id, now=now)] * 4)
    assert sum(r is not None for r in results) == 1
    # And a later tick, through the scheduler's own job, finds the slot fired.
    tick = scheduler.schedules(berlin.settings)["schedules"]
    assert scheduler.run_slot(berlin, tick, now=now + timedelta(minutes=1)).result == {}
    assert count(db, "intents") == 1 and count(db, "runs") == 1
    assert count(db, "schedule_fires") == 1 and count(db, "audit_events", "kind = 'schedule.fired'") == 1
    with db.connection() as conn:
        intent = conn.execute("SELECT * FROM intents").fetchone()
        linked = conn.execute("SELECT * FROM memory_links WHERE to_type = 'schedule'").fetchone()
    assert intent["params"]["schedule"] == schedule_id and not intent["params"]["catch_up"]
    assert (linked["from_type"], linked["from_id"], linked["to_id"]) == ("intent", str(intent["id"]), "1")
    # On time: no catch-up is announced.
    assert count(db, "outbox", "dedupe_key LIKE 'schedule-catch-up:%'") == 0


def test_a_week_down_makes_one_catch_up_announced_not_seven(berlin, db):
    schedule_id = _make(berlin, "every day at 9 write this week's newsletter")
    first = datetime(2026, 3, 11, 9, 0, tzinfo=BERLIN).astimezone(UTC)
    assert firing.tend(berlin, schedule_id, now=first + timedelta(minutes=1)).missed == 0
    back = first + timedelta(days=7, hours=3)
    caught = firing.tend(berlin, schedule_id, now=back)
    assert caught.missed == 6 and caught.slot == first + timedelta(days=7)
    # Another tick, or another scheduler just started, owes nothing more.
    assert firing.tend(berlin, schedule_id, now=back + timedelta(minutes=1)) is None
    assert count(db, "intents") == 2
    with db.connection() as conn:
        [told] = conn.execute("SELECT message FROM outbox WHERE dedupe_key LIKE 'schedule-catch-up:%'").fetchall()
        latest = conn.execute("SELECT params FROM intents ORDER BY id DESC LIMIT 1").fetchone()
    assert told["message"]["title"].startswith(
        "Catching up schedule #1: it was due 7 times while I was not running; I'm running it once now")
    assert latest["params"]["catch_up"] is True


def test_a_schedule_over_its_budget_skips_the_slot_and_says_so_once(berlin, db):
    schedule_id = _make(berlin, WEEKLY + ", budget $2 a month")
    assert firing.tend(berlin, schedule_id, now=MONDAY).outcome == "fired"
    # That run is still queued, so its whole $2 is held against the schedule's month: the next slots are skipped.
    for week in (1, 2):
        assert firing.tend(berlin, schedule_id, now=MONDAY + timedelta(weeks=week)).outcome == "over_budget"
    assert count(db, "intents") == 1
    assert count(db, "schedule_fires", "outcome = 'over_budget'") == 2
    assert count(db, "audit_events", "kind = 'schedule.over_budget'") == 2
    with db.connection() as conn:
        told = conn.execute("SELECT message FROM outbox WHERE dedupe_key LIKE 'schedule-budget:%'").fetchall()
    assert len(told) == 1
    assert told[0]["message"]["title"] == ("Schedule #1 skipped its Mon 23 Mar 2026 09:00 run: its budget of $2.00 "
                                           "this month is used ($2.00 spent or held).")


def test_a_schedule_whose_runs_keep_failing_pauses_itself_and_says_so(berlin, db, work, monkeypatch):
    from orchestrator.workflows import WORKFLOWS
    from orchestrator.workflows.model import Effect, Step

    schedule_id = _make(berlin)
    workflow = WORKFLOWS[_workflow_of(db, schedule_id)]

    def explode(ctx):
        raise ValueError("the newsletter tool answered nonsense")

    broken = workflow.__class__(name=workflow.name, title=workflow.title, describe=workflow.describe,
                                steps=(Step("explode", Effect.READ, explode),))
    monkeypatch.setitem(WORKFLOWS, workflow.name, broken)
    for week in range(3):
        assert firing.tend(berlin, schedule_id, now=MONDAY + timedelta(weeks=week)).outcome == "fired"
        work()
    assert count(db, "runs", "state = 'failed'") == 3
    assert firing.tend(berlin, schedule_id, now=MONDAY + timedelta(weeks=3)).outcome == "paused"
    assert count(db, "intents") == 3
    with db.connection() as conn:
        told = conn.execute("SELECT message FROM outbox WHERE dedupe_key LIKE 'schedule-failing:%'").fetchall()
        state = conn.execute("SELECT state FROM schedules").fetchone()["state"]
    assert state == "paused" and len(told) == 1
    assert told[0]["message"]["title"] == "I paused schedule #1: its last 3 runs failed (#1, #2, #3)."
    # Resumed, it starts counting afresh: the old failures do not pause it again.
    monkeypatch.setitem(WORKFLOWS, workflow.name, workflow)
    _at(berlin, MONDAY + timedelta(weeks=3, hours=1))
    assert operations(berlin).handle_text(OPERATOR, f"resume schedule {schedule_id}").title.startswith(
        "Schedule #1 resumed")
    assert firing.tend(berlin, schedule_id, now=MONDAY + timedelta(weeks=4)).outcome == "fired"


def _workflow_of(db, schedule_id: int) -> str:
    with db.connection() as conn:
        return conn.execute("SELECT workflow FROM schedules WHERE id = %s", (schedule_id,)).fetchone()["workflow"]


def test_pause_resume_and_unschedule_in_chat(berlin, db):
    schedule_id = _make(berlin)
    ops = operations(berlin)
    listed = ops.handle_text(OPERATOR, "schedules")
    assert listed.title == "1 schedule:"
    assert "#1 every Monday at 09:00: active; next Mon 16 Mar 2026 09:00" in listed.plain_text()
    assert ops.handle_text(OPERATOR, f"pause schedule {schedule_id}").title.startswith("Schedule #1 paused by")
    assert "already" in ops.handle_text(OPERATOR, f"pause schedule {schedule_id}").title
    # Paused, its slot passes unfired; resumed, that slot is not owed.
    assert firing.tend(berlin, schedule_id, now=MONDAY + timedelta(minutes=1)) is None
    assert "paused (by console:operator); not running" in ops.handle_text(OPERATOR, "schedules").plain_text()
    _at(berlin, MONDAY + timedelta(hours=1))
    assert ops.handle_text(OPERATOR, f"resume schedule {schedule_id}").title.startswith("Schedule #1 resumed")
    assert firing.tend(berlin, schedule_id, now=MONDAY + timedelta(hours=2)) is None
    assert firing.tend(berlin, schedule_id, now=MONDAY + timedelta(weeks=1)).outcome == "fired"
    assert ops.handle_text(OPERATOR, f"unschedule {schedule_id}").title.startswith("Schedule #1 removed")
    assert ops.handle_text(OPERATOR, "schedules").title == "No schedules yet."
    assert ops.handle_text(OPERATOR, f"resume schedule {schedule_id}").title == (
        "I can't take that request: there is no schedule #1. Nothing was queued.")
    assert firing.tend(berlin, schedule_id, now=MONDAY + timedelta(weeks=2)) is None
    kinds = ["schedule.created", "schedule.paused", "schedule.resumed", "schedule.fired", "schedule.removed"]
    with db.connection() as conn:
        seen = [r["kind"] for r in conn.execute(
            "SELECT kind FROM audit_events WHERE kind LIKE 'schedule.%' ORDER BY id").fetchall()]
    assert seen == kinds
