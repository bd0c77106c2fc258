"""Model spend as the operator reads it: per local day, per month and per tier, against the caps.

Days are the operator's days (`OPSOS_TIMEZONE`), so "today" and "yesterday" match what the operator
means on the phone, not UTC midnight. Standing against the caps is read from the budget ledger
(`budget_periods`), the same figures the scheduler alerts on and the planner decides with, so a raise
the operator approved and a per-tier cap show here too; tokens and history come from `agent_calls`.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from psycopg import Connection
from pydantic import BaseModel

from orchestrator.budget import planning as budget

SPEND_BETWEEN = """
SELECT coalesce(sum(cost_usd), 0)::float8 AS usd, coalesce(sum(input_tokens + output_tokens), 0)::bigint AS tokens
FROM agent_calls WHERE created_at >= %(start)s AND created_at < %(end)s AND (%(tier)s::text IS NULL OR tier = %(tier)s)
"""
LEDGER = """
SELECT scope, period, raised_usd::float8 AS raised, spent_usd::float8 AS spent, reserved_usd::float8 AS reserved
FROM budget_periods WHERE (period = 'day' AND starts_on = %(today)s) OR (period = 'month' AND starts_on = %(month)s)
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
    """Spend of one period against its cap: `name` is "today" or "this month", with the tier for a tier's cap.

    `cap` is the configured cap plus the raises the operator approved; `reserved` is held by calls in flight.
    """

    name: str
    period: str
    spent: float
    cap: float
    tokens: int
    reserved: float = 0.0

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


def between(conn: Connection, start: datetime, end: datetime, *, tier: str | None = None) -> tuple[float, int]:
    row = conn.execute(SPEND_BETWEEN, {"start": start, "end": end, "tier": tier}).fetchone()
    return float(row["usd"]), int(row["tokens"])


def caps(conn: Connection, *, now: datetime, zone: ZoneInfo, caps: budget.Caps) -> list[Cap]:
    """Today's and this month's standing (operator's days): overall first, then each tier that has a cap."""
    today = local_day(now, zone)
    month_start = today.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    spans = {budget.DAY: (today.isoformat(), day_start(today, zone), day_start(today + timedelta(days=1), zone)),
             budget.MONTH: (month_start.strftime("%Y-%m"), day_start(month_start, zone), day_start(next_month, zone))}
    ledger = {(r["scope"], r["period"]): r for r in conn.execute(LEDGER, {"today": today, "month": month_start})}
    tiers = sorted(set(caps.tier_daily) | set(caps.tier_monthly))
    found = []
    for scope in [budget.ALL, *tiers]:
        for period, name in ((budget.DAY, "today"), (budget.MONTH, "this month")):
            configured = caps.configured(scope, period)
            if configured is None:
                continue
            row = ledger.get((scope, period), {"raised": 0.0, "spent": 0.0, "reserved": 0.0})
            label, start, end = spans[period]
            _, tokens = between(conn, start, end, tier=None if scope == budget.ALL else scope)
            found.append(Cap(name=name if scope == budget.ALL else f"{name}, {scope} tier", period=label,
                             spent=row["spent"], reserved=row["reserved"], cap=configured + row["raised"],
                             tokens=tokens))
    return found


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
