"""Model spend from the agent-call record: per local day, per month and per tier, against the configured caps.

Days are the operator's days (`OPSOS_TIMEZONE`), so "today" and "yesterday" match what the operator
means on the phone, not UTC midnight. Spend is read from `agent_calls`, the settled cost of each call.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from psycopg import Connection
from pydantic import BaseModel

SPEND_BETWEEN = """
SELECT coalesce(sum(cost_usd), 0)::float8 AS usd, coalesce(sum(input_tokens + output_tokens), 0)::bigint AS tokens
FROM agent_calls WHERE created_at >= %(start)s AND created_at < %(end)s
"""
SPEND_BY_TIER = """
SELECT tier, coalesce(sum(cost_usd), 0)::float8 AS usd, coalesce(sum(input_tokens + output_tokens), 0)::bigint AS tokens
FROM agent_calls WHERE created_at >= %(start)s AND created_at < %(end)s GROUP BY tier ORDER BY tier
"""
SPEND_PER_DAY = """
SELECT (created_at AT TIME ZONE %(zone)s)::date AS day, sum(cost_usd)::float8 AS usd
FROM agent_calls WHERE created_at >= %(start)s AND created_at < %(end)s GROUP BY 1
"""


class Cap(BaseModel):
    """Spend of one period against its cap: `name` is "today" or "this month"."""

    name: str
    period: str
    spent: float
    cap: float
    tokens: int

    @property
    def share(self) -> float:
        return self.spent / self.cap if self.cap > 0 else 0.0


class TierSpend(BaseModel):
    tier: str
    usd: float
    tokens: int


class BurnDay(BaseModel):
    day: date
    usd: float


def day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def local_day(now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date()


def between(conn: Connection, start: datetime, end: datetime) -> tuple[float, int]:
    row = conn.execute(SPEND_BETWEEN, {"start": start, "end": end}).fetchone()
    return float(row["usd"]), int(row["tokens"])


def caps(conn: Connection, *, now: datetime, zone: ZoneInfo, daily_cap: float, monthly_cap: float) -> list[Cap]:
    """Today's and this month's spend (operator's days) against the daily and monthly caps."""
    today = local_day(now, zone)
    month_start = today.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    day_usd, day_tokens = between(conn, day_start(today, zone), day_start(today + timedelta(days=1), zone))
    month_usd, month_tokens = between(conn, day_start(month_start, zone), day_start(next_month, zone))
    return [
        Cap(name="today", period=today.isoformat(), spent=day_usd, cap=daily_cap, tokens=day_tokens),
        Cap(name="this month", period=month_start.strftime("%Y-%m"), spent=month_usd, cap=monthly_cap,
            tokens=month_tokens),
    ]


def by_tier(conn: Connection, *, start: datetime, end: datetime) -> list[TierSpend]:
    rows = conn.execute(SPEND_BY_TIER, {"start": start, "end": end}).fetchall()
    return [TierSpend(tier=r["tier"], usd=float(r["usd"]), tokens=int(r["tokens"])) for r in rows]


def burn(conn: Connection, *, now: datetime, zone: ZoneInfo, days: int = 30) -> list[BurnDay]:
    """Spend per local day for the last `days` days, today included; days without calls are zero."""
    today = local_day(now, zone)
    first = today - timedelta(days=days - 1)
    rows = conn.execute(SPEND_PER_DAY, {"zone": zone.key, "start": day_start(first, zone),
                                        "end": day_start(today + timedelta(days=1), zone)}).fetchall()
    spent = {r["day"]: float(r["usd"]) for r in rows}
    return [BurnDay(day=first + timedelta(days=i), usd=spent.get(first + timedelta(days=i), 0.0))
            for i in range(days)]
