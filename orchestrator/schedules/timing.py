"""Timings (pure): common English ("every Monday at 9") or a cron string read into a cron expression, said back
in words, and the slots it gives in the operator's time zone (`croniter`).

The reader is small and deterministic on purpose: what it cannot read is refused with the reason, never guessed.
A sentence is a schedule when it starts with a cron string or with "every" and a timing word; "every customer
who cancelled …" is an ordinary request, while "every blursday …" and "every day at 25:00 …" are timings it
cannot read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_DAY_OF = {**{day: n for n, day in enumerate(DAYS)}, **{day[:3]: n for n, day in enumerate(DAYS)},
           "tue": 2, "tues": 2, "wed": 3, "thu": 4, "thur": 4, "thurs": 4}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "tenth": 10, "fifteenth": 15,
             "twentieth": 20}
# Words that can follow "every" in a timing; any other word after "every" starts an ordinary request.
_TIMING_WORDS = frozenset({"day", "weekday", "weekdays", "weekend", "week", "month", "hour", "minute", "morning",
                           *_DAY_OF, *(f"{day}s" for day in DAYS), *_ORDINALS})
_CRON_FIELD = re.compile(r"[0-9*][0-9*/,\-]*|[0-9*/,\-a-z]+")
_AT = re.compile(r"\s*(?:,\s*)?at\s+([^\s,;]+(?:\s*(?:am|pm|a\.m\.|p\.m\.)(?=[\s,;:]|$))?)", re.IGNORECASE)
_DAY_OF_MONTH = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?$")
_ALLOWED_MINUTES = (5, 10, 15, 20, 30)
# "monday", "mondays", "mon": longest first, so "mondays" is not read as "mon" and a stray "days".
_DAY_NAME = "|".join(sorted({*_DAY_OF, *(f"{day}s" for day in DAYS)}, key=len, reverse=True))
_DAY_LIST = re.compile(rf"(?:{_DAY_NAME})\b(?:\s*(?:,|and|&|,\s*and)\s*(?:{_DAY_NAME})\b)*")

EXAMPLES = ("every Monday at 9 write this week's newsletter", "every day at 18:00 …",
            "every weekday at 8:30 …", "every first of the month at 9 …", "every 15 minutes …",
            "0 9 * * 1 … (a cron string: minute hour day-of-month month day-of-week)")


@dataclass(frozen=True)
class Timing:
    """A timing read from the start of a sentence: its cron expression and the request that follows it."""

    cron: str
    request: str


@dataclass(frozen=True)
class Unreadable:
    """A sentence that asks for a schedule whose timing cannot be read: `reason` says what is wrong."""

    reason: str


def read(text: str) -> Timing | Unreadable | None:
    """The timing at the start of `text`, Unreadable when it is one that cannot be read, None when `text` is no
    schedule at all (an ordinary request)."""
    stripped = " ".join(text.split())
    cron = _read_cron(stripped)
    if cron is not None:
        return cron
    match = re.match(r"(every|each)\s+(.*)$", stripped, re.IGNORECASE)
    if not match:
        return None
    rest = match.group(2)
    first = rest.split(" ", 1)[0].lower().strip(",.:;")
    if first.isdigit():
        return _every_n(rest)
    if first not in _TIMING_WORDS and not _DAY_OF_MONTH.fullmatch(first):
        if first.endswith(("day", "days")) or _AT.match(rest[len(first):]):
            return Unreadable(f"“{first}” is not a day or a period I know")
        return None
    return _calendar(rest)


def _read_cron(text: str) -> Timing | Unreadable | None:
    fields = text.split(" ", 5)
    if len(fields) < 5 or not re.fullmatch(r"[0-9*][0-9*/,\-]*", fields[0]):
        return None
    if not all(_CRON_FIELD.fullmatch(f.lower()) for f in fields[:5]):
        return None
    expression = " ".join(f.lower() for f in fields[:5])
    if not croniter.is_valid(expression):
        return Unreadable(f"“{expression}” is not a cron expression (minute hour day-of-month month day-of-week)")
    return _with_request(expression, fields[5] if len(fields) > 5 else "")


def _with_request(cron: str, rest: str) -> Timing | Unreadable:
    request = rest.strip().lstrip(",:;—-").strip()
    if not request:
        return Unreadable("there is nothing after the timing to run")
    return Timing(cron=cron, request=request)


def _every_n(rest: str) -> Timing | Unreadable:
    match = re.match(r"(\d+)\s+(minutes?|hours?)\b(.*)$", rest, re.IGNORECASE)
    if not match:
        return Unreadable(f"“every {' '.join(rest.split(' ')[:2])}” is not a period I know")
    count, unit = int(match.group(1)), match.group(2).lower()
    if unit.startswith("minute"):
        if count not in _ALLOWED_MINUTES:
            return Unreadable(f"every {count} minutes does not divide the hour evenly; use 5, 10, 15, 20 or 30")
        return _with_request(f"*/{count} * * * *", match.group(3))
    if count < 1 or 24 % count:
        return Unreadable(f"every {count} hours does not divide the day evenly; use 1, 2, 3, 4, 6, 8 or 12")
    return _with_request("0 * * * *" if count == 1 else f"0 */{count} * * *", match.group(3))


def _calendar(rest: str) -> Timing | Unreadable:
    """"day …", "Monday and Thursday …", "weekday …", "first of the month …", "hour …", each then "at TIME"."""
    lowered = rest.lower()
    if re.match(r"hour\b", lowered):
        return _with_request("0 * * * *", rest[4:])
    if re.match(r"minute\b", lowered):
        return Unreadable("every minute is too often for a schedule; the shortest is every 5 minutes")
    days, consumed = _days_part(lowered)
    if isinstance(days, Unreadable):
        return days
    at = _AT.match(rest[consumed:])
    if at is None:
        return Unreadable("say at what time, e.g. “every Monday at 9” or “every day at 18:00”")
    clock = read_time(at.group(1))
    if isinstance(clock, Unreadable):
        return clock
    hour, minute = clock
    day_of_month, day_of_week = days
    return _with_request(f"{minute} {hour} {day_of_month} * {day_of_week}", rest[consumed + at.end():])


def _days_part(lowered: str) -> tuple[tuple[str, str] | Unreadable, int]:
    """The day fields (day of month, day of week) at the start of `lowered` and how many characters they took."""
    if match := re.match(r"(day|morning|weekday|weekdays|weekend)\b", lowered):
        fields = {"day": ("*", "*"), "morning": ("*", "*"), "weekday": ("*", "1-5"), "weekdays": ("*", "1-5"),
                  "weekend": ("*", "0,6")}[match.group(1)]
        return fields, match.end()
    if match := re.match(r"month on the (\S+?)\b|(\S+?) of (?:the|every) month\b|(\S+?) of each month\b", lowered):
        word = next(group for group in match.groups() if group)
        day = _ORDINALS.get(word)
        if day is None and (number := _DAY_OF_MONTH.match(word)):
            day = int(number.group(1))
        if day is None or not 1 <= day <= 28:
            # Past the 28th some months have no such day, and cron would skip them without a word.
            return Unreadable(f"“{word} of the month” is not a day every month has; use the 1st to the 28th"), 0
        return (str(day), "*"), match.end()
    offset = 0
    if match := re.match(r"week on ", lowered):
        offset = match.end()
    days = _DAY_LIST.match(lowered, offset)
    if days is None:
        word = lowered[offset:].split(" ", 1)[0]
        return Unreadable(f"“{word}” is not a day or a period I know"), 0
    found = {_DAY_OF[name.removesuffix("s") if name.endswith("days") else name]
             for name in re.findall(_DAY_NAME, days.group(0))}
    return ("*", ",".join(str(d) for d in sorted(found))), days.end()


def read_time(text: str) -> tuple[int, int] | Unreadable:
    """"9", "9am", "6:30 pm", "18:00", "noon", "midnight" → (hour, minute); anything else is Unreadable (pure)."""
    spoken = text.lower().replace(".", "").replace(" ", "")
    if spoken in ("noon", "midday"):
        return 12, 0
    if spoken == "midnight":
        return 0, 0
    match = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?(am|pm)?", spoken)
    if not match:
        return Unreadable(f"“{text}” is not a time of day; say e.g. “at 9”, “at 18:00” or “at 6:30 pm”")
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if half:
        if not 1 <= hour <= 12 or minute > 59:
            return Unreadable(f"“{text}” is not a time of day")
        hour = hour % 12 + (12 if half == "pm" else 0)
    elif hour > 23 or minute > 59:
        return Unreadable(f"“{text}” is not a time of day")
    return hour, minute


# -- said back in words -------------------------------------------------------------------------------


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _day_names(field: str) -> list[str] | None:
    names: list[str] = []
    for part in field.split(","):
        if re.fullmatch(r"[0-7]", part):
            names.append(DAYS[int(part) % 7].capitalize())
        elif part[:3] in _DAY_OF:
            names.append(DAYS[_DAY_OF[part[:3]]].capitalize())
        else:
            return None
    return names


def describe(cron: str) -> str:
    """A cron expression in words ("every Monday at 09:00"); an unusual one is named as the cron string (pure)."""
    minute, hour, day_of_month, month, day_of_week = cron.split()
    if (every := re.fullmatch(r"\*/(\d+)", minute)) and (hour, day_of_month, month, day_of_week) == ("*",) * 4:
        return f"every {every.group(1)} minutes"
    if minute.isdigit() and (hour, day_of_month, month, day_of_week) == ("*",) * 4:
        return "every hour, on the hour" if minute == "0" else f"every hour at :{int(minute):02d}"
    if minute == "0" and (every := re.fullmatch(r"\*/(\d+)", hour)) and (day_of_month, month, day_of_week) == (
            "*",) * 3:
        return f"every {every.group(1)} hours"
    if not (minute.isdigit() and hour.isdigit() and month == "*"):
        return f"at the times of the cron expression “{cron}”"
    at = f"at {int(hour):02d}:{int(minute):02d}"
    if day_of_month == "*" and day_of_week == "*":
        return f"every day {at}"
    if day_of_month == "*" and day_of_week == "1-5":
        return f"every weekday (Monday to Friday) {at}"
    if day_of_month.isdigit() and day_of_week == "*":
        return f"on the {_ordinal(int(day_of_month))} of every month {at}"
    names = _day_names(day_of_week) if day_of_month == "*" else None
    if names:
        joined = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"every {joined} {at}"
    return f"at the times of the cron expression “{cron}”"


# -- slots ----------------------------------------------------------------------------------------------


def next_times(cron: str, zone: ZoneInfo, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` times after `after`, in `zone`."""
    found = croniter(cron, after.astimezone(zone))
    return [found.get_next(datetime) for _ in range(count)]


def latest_slot(cron: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The newest time the expression names at or before `now` (a slot at `now` exactly counts)."""
    # croniter's previous time excludes its start, so start just after `now`; cron has whole minutes only.
    return croniter(cron, now.astimezone(zone) + timedelta(seconds=1)).get_prev(datetime)


def count_between(cron: str, zone: ZoneInfo, after: datetime, before: datetime, *, limit: int = 10_000) -> int:
    """How many times the expression names strictly between `after` and `before`, counted up to `limit`."""
    found = croniter(cron, after.astimezone(zone))
    count = 0
    while count < limit and found.get_next(datetime) < before:
        count += 1
    return count
