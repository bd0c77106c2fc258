"""The budget ledger: every model call reserves its estimated cost before it runs and settles the real cost after.

Spend is kept per scope (`all`, or a tier name) and period (the operator's day and month) in
`budget_periods`. The planner (pure) decides, from those standings, whether a step calls on its
tier, steps down to a cheaper one, asks the operator for more budget, or waits at the cap; the
reservation then makes that decision hold against every other worker.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from psycopg import Connection

from agents import cheaper_tiers
from orchestrator import audit, outbox, words
from orchestrator.errors import BudgetExceeded
from orchestrator.settings import Settings

ALL = "all"
DAY, MONTH = "day", "month"
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

    @classmethod
    def from_settings(cls, settings: Settings) -> Caps:
        return cls(daily=settings.budget_daily_usd, monthly=settings.budget_monthly_usd,
                   tier_daily=dict(settings.budget_tier_daily_usd), tier_monthly=dict(settings.budget_tier_monthly_usd))

    def configured(self, scope: str, period: str) -> float | None:
        if scope == ALL:
            return self.daily if period == DAY else self.monthly
        return (self.tier_daily if period == DAY else self.tier_monthly).get(scope)


def periods_for(tier: str, today: date) -> list[Period]:
    month = today.replace(day=1)
    return sorted(Period(scope, period, month if period == MONTH else today)
                  for scope in (ALL, tier) for period in (DAY, MONTH))


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


class Decision(StrEnum):
    USE = "use"
    STEP_DOWN = "step_down"
    ASK = "ask"
    WAIT = "wait"


@dataclass(frozen=True)
class Plan:
    decision: Decision
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
        return Plan(Decision.USE, tier)
    if may_step_down:
        lower = [t for t in cheaper_tiers(tier) if t in estimates]
        for candidate in [t for t in lower if fits(t) and not near(t)] + [t for t in lower if fits(t)]:
            return Plan(Decision.STEP_DOWN, candidate)
    if fits(tier):
        return Plan(Decision.USE, tier)
    blocking = max(standings[tier], key=lambda s: s.shortfall(estimates[tier]))
    shortfall = math.ceil(blocking.shortfall(estimates[tier]) / raise_step - 1e-9) * raise_step
    at_cap = may_step_down or blocking.cap is None or blocking.spent + blocking.reserved >= blocking.cap - 1e-9
    return Plan(Decision.WAIT if at_cap else Decision.ASK, tier, blocking, round(max(shortfall, raise_step), 2))


def crossed(standing: Standing) -> list[int]:
    """The alert thresholds a period's settled spend has reached (pure)."""
    if not standing.cap:
        return []
    return [t for t in THRESHOLDS if standing.spent >= standing.cap * t / 100 - 1e-9]


def cap_name(period: Period) -> str:
    """How the operator (and the scheduler's alerts, whose dedupe keys these match) names a cap."""
    base = "today" if period.period == DAY else "this month"
    return base if period.scope == ALL else f"{period.scope} tier {base}"


def alert_key(period: Period, threshold: int) -> str:
    label = period.starts_on.isoformat() if period.period == DAY else period.starts_on.strftime("%Y-%m")
    return f"budget:{cap_name(period)}:{label}:{threshold}"


# -- the ledger in PostgreSQL ---------------------------------------------------------------------------

ENSURE = """
INSERT INTO budget_periods (scope, period, starts_on) VALUES (%(scope)s, %(period)s, %(starts_on)s)
ON CONFLICT DO NOTHING
"""
STANDING = """
SELECT scope, period, starts_on, raised_usd::float8 AS raised, reserved_usd::float8 AS reserved,
       spent_usd::float8 AS spent
FROM budget_periods WHERE scope = %(scope)s AND period = %(period)s AND starts_on = %(starts_on)s
"""
# The concurrency rule: this conditional UPDATE is the reservation. It takes the period row's lock,
# so concurrent reservations of one row run one after another; under READ COMMITTED the second one
# re-evaluates the WHERE clause on the row the first one committed, so it sees that reservation and
# fails instead of passing the same check. The reserving transaction updates the rows of all its
# periods in one fixed order (`periods_for` sorts them), so two reservers can never deadlock.
RESERVE = """
UPDATE budget_periods SET reserved_usd = reserved_usd + %(amount)s
WHERE scope = %(scope)s AND period = %(period)s AND starts_on = %(starts_on)s
  AND (%(cap)s::numeric IS NULL OR spent_usd + reserved_usd + %(amount)s <= %(cap)s::numeric + raised_usd)
RETURNING spent_usd
"""
RECORD_CALL = """
INSERT INTO budget_calls (run_id, step, tier, model, state, estimate_usd, day, month)
VALUES (%(run_id)s, %(step)s, %(tier)s, %(model)s, 'reserved', %(estimate)s, %(day)s, %(month)s) RETURNING id
"""
# Only a reservation still open is settled or released: a repeat (a retried settle) changes nothing.
CLOSE_CALL = """
UPDATE budget_calls SET state = %(state)s, model = %(model)s, cost_usd = %(cost)s, input_tokens = %(input_tokens)s,
    output_tokens = %(output_tokens)s, settled_at = now()
WHERE id = %(id)s AND state = 'reserved'
RETURNING tier, estimate_usd, day, month
"""
SETTLE_PERIOD = """
UPDATE budget_periods SET reserved_usd = greatest(reserved_usd - %(estimate)s, 0), spent_usd = spent_usd + %(cost)s
WHERE scope = %(scope)s AND period = %(period)s AND starts_on = %(starts_on)s
"""
ASK = """
INSERT INTO budget_asks (run_id, step, digest, scope, period, starts_on, amount_usd, waiting)
VALUES (%(run_id)s, %(step)s, %(digest)s, %(scope)s, %(period)s, %(starts_on)s, %(amount)s, %(waiting)s)
ON CONFLICT DO NOTHING
"""
# Applying a granted raise marks the ask first: a step re-run after the approval raises the cap once.
APPLY_ASK = """
UPDATE budget_asks SET approval_id = %(approval)s, applied_at = now()
WHERE run_id = %(run_id)s AND step = %(step)s AND digest = %(digest)s AND applied_at IS NULL
RETURNING scope, period, starts_on, amount_usd
"""
RAISE = """
UPDATE budget_periods SET raised_usd = raised_usd + %(amount)s
WHERE scope = %(scope)s AND period = %(period)s AND starts_on = %(starts_on)s
"""
WAITING = """
SELECT k.run_id, p.id AS approval_id FROM budget_asks k
JOIN approvals p ON p.run_id = k.run_id AND p.step = k.step AND p.action_digest = k.digest AND p.state = 'pending'
WHERE k.applied_at IS NULL
"""
APPLIED = "SELECT count(*) AS n FROM budget_asks WHERE run_id = %s AND step = %s AND applied_at IS NOT NULL"
RUN_CALLS = """
SELECT tier, model, coalesce(sum(cost_usd), 0)::float8 AS usd,
       coalesce(sum(input_tokens + output_tokens), 0)::bigint AS tokens, count(*) AS calls
FROM budget_calls WHERE run_id = %s AND state = 'settled' GROUP BY tier, model ORDER BY tier, model
"""


class CapReached(BudgetExceeded):
    """A reservation did not fit: `period` is the cap that refused it, `needed` the cost it asked for."""

    def __init__(self, standing: Standing, needed: float) -> None:
        super().__init__(standing.cap or 0.0, standing.spent + standing.reserved)
        self.standing = standing
        self.needed = needed


@dataclass(frozen=True)
class Reservation:
    id: int
    tier: str
    model: str
    estimate_usd: float
    periods: tuple[Period, ...]


def _standing(conn: Connection, period: Period, caps: Caps) -> Standing:
    conn.execute(ENSURE, _key(period))
    row = conn.execute(STANDING, _key(period)).fetchone()
    configured = caps.configured(period.scope, period.period)
    return Standing(period=period, cap=None if configured is None else configured + float(row["raised"]),
                    spent=float(row["spent"]), reserved=float(row["reserved"]))


def _key(period: Period) -> dict[str, Any]:
    return {"scope": period.scope, "period": period.period, "starts_on": period.starts_on}


def standings(conn: Connection, *, tiers: list[str], today: date, caps: Caps) -> dict[str, list[Standing]]:
    """Where every period a call on each of `tiers` counts against stands now."""
    return {tier: [_standing(conn, p, caps) for p in periods_for(tier, today)] for tier in tiers}


def reserve(conn: Connection, *, run_id: int | None, step: str, tier: str, model: str, estimate_usd: float,
            today: date, caps: Caps) -> Reservation:
    """Hold `estimate_usd` against every cap the call counts against, all or none, in one transaction.

    Raises CapReached (the transaction rolled back, nothing held) when one of them has no room.
    """
    periods = periods_for(tier, today)
    with conn.transaction():
        for period in periods:
            conn.execute(ENSURE, _key(period))
        for period in periods:
            configured = caps.configured(period.scope, period.period)
            held = conn.execute(RESERVE, {**_key(period), "amount": estimate_usd, "cap": configured}).fetchone()
            if held is None:
                raise CapReached(_standing(conn, period, caps), estimate_usd)
        call = conn.execute(RECORD_CALL, {"run_id": run_id, "step": step, "tier": tier, "model": model,
                                          "estimate": estimate_usd, "day": today,
                                          "month": today.replace(day=1)}).fetchone()
    return Reservation(id=call["id"], tier=tier, model=model, estimate_usd=estimate_usd, periods=tuple(periods))


def settle(conn: Connection, reservation: Reservation, *, model: str, input_tokens: int, output_tokens: int,
           cost_usd: float, caps: Caps) -> list[Standing]:
    """Turn the reservation into the real cost, inside the caller's transaction; returns the periods after it.

    The real cost can exceed the estimate (a prompt longer in tokens than its characters suggested);
    it is recorded as it was, since the money is spent, and the next reservation sees it.
    """
    return _close(conn, reservation, state="settled", model=model, cost=cost_usd, input_tokens=input_tokens,
                  output_tokens=output_tokens, caps=caps)


def release(conn: Connection, reservation: Reservation, *, caps: Caps) -> None:
    """Give a reservation back: the call failed before it cost anything we know of."""
    _close(conn, reservation, state="released", model=reservation.model, cost=0.0, input_tokens=0, output_tokens=0,
           caps=caps)


def _close(conn: Connection, reservation: Reservation, *, state: str, model: str, cost: float, input_tokens: int,
           output_tokens: int, caps: Caps) -> list[Standing]:
    closed = conn.execute(CLOSE_CALL, {"id": reservation.id, "state": state, "model": model, "cost": cost,
                                       "input_tokens": input_tokens, "output_tokens": output_tokens}).fetchone()
    if closed is None:
        return []
    for period in reservation.periods:
        conn.execute(SETTLE_PERIOD, {**_key(period), "estimate": reservation.estimate_usd, "cost": cost})
    return [_standing(conn, period, caps) for period in reservation.periods]


OPEN_CALLS = """
SELECT id, tier, model, estimate_usd::float8 AS estimate, day FROM budget_calls
WHERE run_id = %s AND step = %s AND state = 'reserved' ORDER BY id
"""


def release_abandoned(conn: Connection, *, run_id: int, step: str, caps: Caps) -> int:
    """Give back what an earlier attempt of this step reserved and never settled (its worker was killed).

    Safe only because one worker at a time runs a run's steps (the engine's advisory lock): an open
    reservation of this run and step cannot belong to a call still in flight.
    """
    rows = conn.execute(OPEN_CALLS, (run_id, step)).fetchall()
    for row in rows:
        release(conn, Reservation(id=row["id"], tier=row["tier"], model=row["model"], estimate_usd=row["estimate"],
                                  periods=tuple(periods_for(row["tier"], row["day"]))), caps=caps)
    return len(rows)


def post_alerts(conn: Connection, after: list[Standing], *, channel: str, conversation: str,
                force_full: Period | None = None) -> list[str]:
    """Tell the operator a 50 / 80 / 100 % threshold reached, once per cap, period and threshold (the outbox
    dedupes on the same keys as the scheduler's budget check, so neither repeats the other).

    `force_full` marks a cap that just refused a call: for the operator that cap is reached even if
    the reservations that fill it are not yet spent.
    """
    posted = []
    for standing in after:
        thresholds = crossed(standing)
        if force_full is not None and standing.period == force_full and 100 not in thresholds:
            thresholds.append(100)
        if not thresholds:
            continue
        # Only the highest one reached, as the scheduler's check does: a jump from 10 % to 90 % is one alert.
        threshold = max(thresholds)
        key = alert_key(standing.period, threshold)
        message = words.budget_alert(cap_name(standing.period), threshold, standing.spent, standing.cap or 0.0)
        if outbox.post(conn, channel=channel, conversation=conversation, message=message, dedupe_key=key):
            audit.append(conn, actor="budget", kind="budget.alert",
                         payload={"cap": cap_name(standing.period), "threshold": threshold,
                                  "spent": standing.spent, "limit": standing.cap})
            posted.append(key)
    return posted


def record_ask(conn: Connection, *, run_id: int, step: str, digest: str, plan: Plan) -> None:
    """Remember that this step waits for budget, so status says so and an approval raises the right cap."""
    assert plan.blocking is not None
    conn.execute(ASK, {"run_id": run_id, "step": step, "digest": digest, **_key(plan.blocking.period),
                       "amount": plan.shortfall_usd, "waiting": plan.decision is Decision.WAIT})


def apply_raise(conn: Connection, *, run_id: int, step: str, digest: str, approval_id: str) -> float:
    """Raise the asked cap by the asked amount, once per ask, inside the caller's transaction; returns the raise."""
    row = conn.execute(APPLY_ASK, {"run_id": run_id, "step": step, "digest": digest,
                                   "approval": approval_id}).fetchone()
    if row is None:
        return 0.0
    conn.execute(RAISE, {"scope": row["scope"], "period": row["period"], "starts_on": row["starts_on"],
                         "amount": row["amount_usd"]})
    return float(row["amount_usd"])


def raises_applied(conn: Connection, *, run_id: int, step: str) -> int:
    """How many budget raises this step has had: a new ask after one is a new decision, not the old one."""
    return int(conn.execute(APPLIED, (run_id, step)).fetchone()["n"])


def waiting_for_budget(conn: Connection) -> dict[int, str]:
    """Runs whose pending approval is a budget ask, with that approval's id."""
    return {row["run_id"]: row["approval_id"] for row in conn.execute(WAITING).fetchall()}


def run_calls(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """A run's settled model spend per tier and model, for its report."""
    return list(conn.execute(RUN_CALLS, (run_id,)).fetchall())


def local_today(now: datetime, settings: Settings) -> date:
    """The operator's day, the same one the scheduler's alerts and the digest count in."""
    return now.astimezone(settings.zone).date()
