"""The schedules' words: a timing refused or proposed, a schedule stored, listed, changed, fired late, over its
budget or paused after failing runs."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from orchestrator import buttons
from orchestrator.messages import Action, Fact, Message, MessageKind, Section, Style
from orchestrator.schedules.records import Schedule, ScheduleState
from orchestrator.schedules.timing import EXAMPLES, describe
from orchestrator.words.common import money, plural

SCHEDULE_COMMANDS = "“schedules” lists them; “pause schedule N”, “resume schedule N” and “unschedule N” change one."


def local(moment: datetime, zone: ZoneInfo) -> str:
    """A moment in the operator's time zone, e.g. "Mon 16 Mar 2026 09:00"."""
    return f"{moment.astimezone(zone):%a %d %b %Y %H:%M}"


def _times(moments: list[datetime], zone: ZoneInfo) -> str:
    return "; ".join(local(moment, zone) for moment in moments)


def timing_unreadable(reason: str) -> Message:
    """A schedule whose timing cannot be read: the reason and the timings that can, nothing stored."""
    return Message(kind=MessageKind.REFUSAL, title=f"I can't read when to run that: {reason}. Nothing was scheduled.",
                   text="Timings I read: " + "; ".join(f"“{example}”" for example in EXAMPLES) + ".")


def cannot_schedule(request: str, closest: list[str]) -> Message:
    hint = f" The closest I know: {' or '.join(k.replace('_', ' ') for k in closest)}." if closest else ""
    return Message(kind=MessageKind.REFUSAL,
                   title="I can't schedule that: I don't know how to do it yet, so nothing was scheduled.",
                   text=f"“{request[:120]}” matched none of my workflows.{hint} “help” lists what I can do.")


def proposal(*, token: str, cron: str, zone: ZoneInfo, upcoming: list[datetime], request: str, title: str,
             budget_monthly_usd: float, run_budget_usd: float) -> Message:
    """The schedule said back before anything is stored, with a Confirm button."""
    when = describe(cron)
    return Message(
        kind=MessageKind.NOTICE,
        title=f"Schedule this? {when[:1].upper()}{when[1:]} ({zone.key}), I would run the {title}.",
        text="Nothing is stored until you confirm; this offer lapses in an hour.",
        sections=[Section(facts=[
            Fact(label="When", value=f"{describe(cron)}, {zone.key} time (cron “{cron}”)"),
            Fact(label="Next", value=_times(upcoming, zone)),
            Fact(label="Runs", value=f"{title}: “{request}”"),
            Fact(label="Budget", value=f"{money(budget_monthly_usd)} a month for this schedule; each run up to "
                                       f"{money(min(run_budget_usd, budget_monthly_usd))}"),
        ])],
        actions=[Action(label="Confirm schedule", value=buttons.confirm(token), style=Style.PRIMARY)],
    )


def proposal_expired() -> Message:
    return Message(kind=MessageKind.NOTICE,
                   title="That schedule offer has lapsed; nothing was scheduled. Please ask again.")


def created(schedule: Schedule, upcoming: list[datetime]) -> Message:
    zone = ZoneInfo(schedule.timezone)
    return Message(kind=MessageKind.ACK,
                   title=f"Scheduled as #{schedule.id}: {describe(schedule.cron)} ({zone.key}).",
                   text=f"Next: {_times(upcoming, zone)}. {SCHEDULE_COMMANDS}")


def already_created(schedule: Schedule) -> Message:
    return Message(kind=MessageKind.ACK, title=f"Already scheduled: that is schedule #{schedule.id}.")


def _state(schedule: Schedule) -> str:
    if schedule.state is ScheduleState.PAUSED and schedule.reason:
        return f"paused ({schedule.reason})"
    return schedule.state.value


def overview(listed: list[tuple[Schedule, datetime | None]]) -> Message:
    """`schedules`: each with its number, timing, next time (None when paused) and state."""
    if not listed:
        return Message(kind=MessageKind.REPORT, title="No schedules yet.",
                       text="Make one in words, e.g. “every Monday at 9 write this week's newsletter”.")
    facts = []
    for schedule, upcoming in listed:
        zone = ZoneInfo(schedule.timezone)
        when = f"next {local(upcoming, zone)}" if upcoming else "not running"
        facts.append(Fact(label=f"#{schedule.id} {describe(schedule.cron)}",
                          value=f"{_state(schedule)}; {when}; “{schedule.request[:80]}”"))
    return Message(kind=MessageKind.REPORT, title=f"{plural(len(listed), 'schedule')}:",
                   sections=[Section(facts=facts)], text=SCHEDULE_COMMANDS)


def changed(schedule: Schedule, done: str, who: str) -> Message:
    return Message(kind=MessageKind.ACK, title=f"Schedule #{schedule.id} {done} by {who}.",
                   text=f"{describe(schedule.cron)}: “{schedule.request[:80]}”.")


def catch_up(schedule: Schedule, *, missed: int, slot: datetime, run_id: int) -> Message:
    """One run for every slot missed while opsos was down, said as such."""
    zone = ZoneInfo(schedule.timezone)
    owed = plural(missed + 1, "time")
    return Message(kind=MessageKind.NOTICE, run_id=run_id,
                   title=f"Catching up schedule #{schedule.id}: it was due {owed} while I was not running; "
                         f"I'm running it once now (run #{run_id}), not {missed + 1} times."
                   if missed else f"Catching up schedule #{schedule.id}: it was due at {local(slot, zone)} while I "
                                  f"was not running; I'm running it now (run #{run_id}).",
                   text=f"{describe(schedule.cron)}: “{schedule.request[:80]}”. The latest missed time was "
                        f"{local(slot, zone)}.")


def over_budget(schedule: Schedule, *, committed: float, slot: datetime) -> Message:
    zone = ZoneInfo(schedule.timezone)
    return Message(kind=MessageKind.ALERT,
                   title=f"Schedule #{schedule.id} skipped its {local(slot, zone)} run: its budget of "
                         f"{money(schedule.budget_monthly_usd)} this month is used ({money(committed)} spent or held).",
                   text="Its runs are skipped until next month; I won't say so again this month. "
                        f"“unschedule {schedule.id}” stops it.")


def paused_failing(schedule: Schedule, run_ids: list[int]) -> Message:
    runs = ", ".join(f"#{run_id}" for run_id in sorted(run_ids))
    return Message(kind=MessageKind.ALERT,
                   title=f"I paused schedule #{schedule.id}: its last {len(run_ids)} runs failed ({runs}).",
                   text=f"{describe(schedule.cron)}: “{schedule.request[:80]}”. “status N” shows why a run failed; "
                        f"“resume schedule {schedule.id}” starts it again.")


def paused_gone(schedule: Schedule) -> Message:
    return Message(kind=MessageKind.ALERT,
                   title=f"I paused schedule #{schedule.id}: the {schedule.workflow} workflow it runs is gone.",
                   text=f"“{schedule.request[:80]}”. “unschedule {schedule.id}” removes it.")
