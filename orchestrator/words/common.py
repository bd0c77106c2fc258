"""Small pieces every sentence shares: amounts of money, plurals, spans of time."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta


def money(amount: float) -> str:
    return f"${amount:,.2f}"


def within(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return "the hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minutes"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def utc(moment: datetime) -> str:
    """A moment as the operator reads it, converted to UTC first: a database in another time zone hands back
    its own local times, which printed as they are would be off by hours and still say "UTC"."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
