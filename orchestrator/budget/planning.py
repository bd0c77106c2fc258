"""The budget plan (pure): caps, periods and standings, and what a model call should do against them.

Spend is kept per scope (`all`, or a tier name) and period (the operator's day and month). From those
standings the planner decides whether a step calls on its tier, steps down to a cheaper one, asks the
operator for more budget, or waits at the cap; `ledger.reserve` then makes that decision hold against
every other worker.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum

from agents import cheaper_tiers
from orchestrator.settings import Settings

ALL = "all"
DAY, MONTH = "day", "month"
# An intent's own budget ("… budget $20") is a period of its own: the intent's whole life.
INTENT = "intent"
THRESHOLDS = (50, 80, 100)


@dataclass(frozen=True, order=True)
class Period:
    """One ledger row's key. Ordered, because rows are always locked in this order (see RESERVE)."""

    scope: str
    period: str
    starts_on: date


@dataclass(frozen=True)
class Caps:
    """The configured caps in USD; None means no cap for that scope and period (spend is still kept)."""

    daily: float | None
    monthly: float | None
    tier_daily: dict[str, float]
    tier_monthly: dict[str, float]
    # The budget of each intent a call counts against, by its scope (`intent:<id>`).
    per_intent: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Caps:
        return cls(daily=settings.budget_daily_usd, monthly=settings.budget_monthly_usd,
                   tier_daily=dict(settings.budget_tier_daily_usd), tier_monthly=dict(settings.budget_tier_monthly_usd))

    def with_intent(self, period: Period, budget_usd: float) -> Caps:
        """These caps plus one intent's own budget."""
        return replace(self, per_intent={**self.per_intent, period.scope: budget_usd})

    def configured(self, scope: str, period: str) -> float | None:
        if period == INTENT:
            return self.per_intent.get(scope)
        if scope == ALL:
            return self.daily if period == DAY else self.monthly
        return (self.tier_daily if period == DAY else self.tier_monthly).get(scope)


def intent_period(intent_id: int, created_at: datetime) -> Period:
    """The ledger row of one intent's budget: its whole life, keyed by the day (UTC) it was asked."""
    return Period(f"intent:{intent_id}", INTENT, created_at.astimezone(UTC).date())


def periods_for(tier: str, today: date, *, intent: Period | None = None) -> list[Period]:
    """Every period a call on `tier` counts against, in the one order they are always locked in."""
    month = today.replace(day=1)
    periods = [Period(scope, period, month if period == MONTH else today)
               for scope in (ALL, tier) for period in (DAY, MONTH)]
    return sorted([*periods, intent] if intent is not None else periods)


@dataclass(frozen=True)
class Standing:
    """A period's spend: `cap` is the configured cap plus approved raises, None when uncapped."""

    period: Period
    cap: float | None
    spent: float
    reserved: float

    def after(self, estimate: float) -> float:
        return self.spent + self.reserved + estimate

    def fits(self, estimate: float) -> bool:
        return self.cap is None or self.after(estimate) <= self.cap + 1e-9

    def near(self, estimate: float, share: float) -> bool:
        return self.cap is not None and self.after(estimate) > share * self.cap

    def shortfall(self, estimate: float) -> float:
        return 0.0 if self.cap is None else max(0.0, self.after(estimate) - self.cap)


class Choice(StrEnum):
    """What the plan tells a model call to do (not an operator's decision: that is `approvals.Decision`)."""

    USE = "use"
    STEP_DOWN = "step_down"
    ASK = "ask"
    WAIT = "wait"


@dataclass(frozen=True)
class Plan:
    choice: Choice
    tier: str
    blocking: Standing | None = None
    shortfall_usd: float = 0.0


def plan(*, tier: str, estimates: dict[str, float], standings: dict[str, list[Standing]], may_step_down: bool,
         step_down_at: float, raise_step: float = 0.10) -> Plan:
    """What a call on `tier` should do now (pure).

    Near a cap (past `step_down_at` of it) a step that may step down takes the nearest cheaper tier
    that fits, preferring one that is not near a cap either; one that may not step down uses its
    tier while it fits. When its tier does not fit, a step that may not step down ASKs for the
    shortfall; when nothing it may use fits, it WAITs at the cap. Either way the operator is asked
    to raise the blocking cap by the shortfall, rounded up to `raise_step`.
    """
    def fits(t: str) -> bool:
        return all(s.fits(estimates[t]) for s in standings[t])

    def near(t: str) -> bool:
        return any(s.near(estimates[t], step_down_at) for s in standings[t])

    if fits(tier) and not near(tier):
        return Plan(Choice.USE, tier)
    if may_step_down:
        lower = [t for t in cheaper_tiers(tier) if t in estimates]
        for candidate in [t for t in lower if fits(t) and not near(t)] + [t for t in lower if fits(t)]:
            return Plan(Choice.STEP_DOWN, candidate)
    if fits(tier):
        return Plan(Choice.USE, tier)
    blocking = max(standings[tier], key=lambda s: s.shortfall(estimates[tier]))
    shortfall = math.ceil(blocking.shortfall(estimates[tier]) / raise_step - 1e-9) * raise_step
    at_cap = may_step_down or blocking.cap is None or blocking.spent + blocking.reserved >= blocking.cap - 1e-9
    return Plan(Choice.WAIT if at_cap else Choice.ASK, tier, blocking, round(max(shortfall, raise_step), 2))


def crossed(standing: Standing) -> list[int]:
    """The alert thresholds a period's settled spend has reached (pure)."""
    if not standing.cap:
        return []
    return [t for t in THRESHOLDS if standing.spent >= standing.cap * t / 100 - 1e-9]


def cap_name(period: Period) -> str:
    """How the operator (and the scheduler's alerts, whose dedupe keys these match) names a cap."""
    if period.period == INTENT:
        return f"intent #{period.scope.removeprefix('intent:')}"
    base = "today" if period.period == DAY else "this month"
    return base if period.scope == ALL else f"{period.scope} tier {base}"


def alert_key(period: Period, threshold: int) -> str:
    label = period.starts_on.strftime("%Y-%m") if period.period == MONTH else period.starts_on.isoformat()
    return f"budget:{cap_name(period)}:{label}:{threshold}"



def local_today(now: datetime, settings: Settings) -> date:
    """The operator's day, the same one the scheduler's alerts and the digest count in."""
    return now.astimezone(settings.zone).date()
