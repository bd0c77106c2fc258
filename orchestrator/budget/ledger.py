"""The budget ledger in PostgreSQL: every model call reserves its estimated cost before it runs and settles after.

The rows of `budget_periods` hold spend, reservations and approved raises per scope and period (see
`planning` for what they mean); `budget_calls` holds each call's reservation until it is settled or released;
`budget_asks` the raises a step asked the operator for.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg import Connection

from orchestrator.budget.planning import Caps, Choice, Period, Plan, Standing, intent_period, periods_for
from orchestrator.errors import BudgetExceeded

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
# A call whose reservation was given back while it ran (its worker lost the run, and the new owner released what
# looked abandoned) still cost what the model billed: the row turns settled and only the cost is added, since the
# release already took the estimate off `reserved_usd`.
LATE_SETTLE = """
UPDATE budget_calls SET state = 'settled', model = %(model)s, cost_usd = %(cost)s, input_tokens = %(input_tokens)s,
    output_tokens = %(output_tokens)s, settled_at = now()
WHERE id = %(id)s AND state = 'released'
RETURNING id
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


def standings(conn: Connection, *, tiers: list[str], today: date, caps: Caps,
              intent: Period | None = None) -> dict[str, list[Standing]]:
    """Where every period a call on each of `tiers` counts against stands now."""
    return {tier: [_standing(conn, p, caps) for p in periods_for(tier, today, intent=intent)] for tier in tiers}


def reserve(conn: Connection, *, run_id: int | None, step: str, tier: str, model: str, estimate_usd: float,
            today: date, caps: Caps, intent: Period | None = None) -> Reservation:
    """Hold `estimate_usd` against every cap the call counts against, all or none, in one transaction.

    Raises CapReached (the transaction rolled back, nothing held) when one of them has no room.
    """
    periods = periods_for(tier, today, intent=intent)
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
    it is recorded as it was, since the money is spent, and the next reservation sees it. So is the cost of a
    call whose reservation was released while it ran (`release_abandoned` by a worker that took the run over).
    """
    closed = _close(conn, reservation, state="settled", model=model, cost=cost_usd, input_tokens=input_tokens,
                    output_tokens=output_tokens, caps=caps)
    if closed:
        return closed
    fields = {"id": reservation.id, "model": model, "cost": cost_usd, "input_tokens": input_tokens,
              "output_tokens": output_tokens}
    if conn.execute(LATE_SETTLE, fields).fetchone() is None:
        return []
    for period in reservation.periods:
        conn.execute(SETTLE_PERIOD, {**_key(period), "estimate": 0.0, "cost": cost_usd})
    return [_standing(conn, period, caps) for period in reservation.periods]


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


# With the intent the run serves: its call counted against that intent's budget too (`intent_period`).
OPEN_CALLS = """
SELECT c.id, c.tier, c.model, c.estimate_usd::float8 AS estimate, c.day, i.id AS intent_id, i.created_at
FROM budget_calls c JOIN runs r ON r.id = c.run_id JOIN intents i ON i.id = r.intent_id
WHERE c.run_id = %s AND c.step = %s AND c.state = 'reserved' ORDER BY c.id
"""


def release_abandoned(conn: Connection, *, run_id: int, step: str, caps: Caps) -> int:
    """Give back what an earlier attempt of this step reserved and never settled (its worker was killed).

    One worker at a time runs a run's steps (the engine's advisory lock, checked before each call), so an open
    reservation of this run and step is one whose call died with its worker, or, rarely, one whose worker lost
    the lock while its call ran: that call's settle still records what it cost (`settle`), so nothing is lost.
    """
    return _release_rows(conn, conn.execute(OPEN_CALLS, (run_id, step)).fetchall(), caps=caps)


# Reservations no run owns (the nightly summariser's): nothing re-runs their step to give them back, so a call
# killed in flight would hold its estimate against every cap for ever.
STALE_RUNLESS = """
SELECT id, tier, model, estimate_usd::float8 AS estimate, day FROM budget_calls
WHERE run_id IS NULL AND state = 'reserved' AND reserved_at < %s ORDER BY id
FOR UPDATE SKIP LOCKED
"""


def release_stale(conn: Connection, *, before: datetime, caps: Caps) -> int:
    """Give back run-less reservations made before `before`, in the caller's transaction; returns how many.

    `before` must lie further back than any model call can last (an RQ job's timeout), so no call still in
    flight loses its hold. SKIP LOCKED: a reservation being settled right now is left to its settle.
    """
    return _release_rows(conn, conn.execute(STALE_RUNLESS, (before,)).fetchall(), caps=caps)


def _release_rows(conn: Connection, rows: list[dict[str, Any]], *, caps: Caps) -> int:
    """Release open `budget_calls` rows against the same periods their reservation held (an intent's too)."""
    for row in rows:
        intent = intent_period(row["intent_id"], row["created_at"]) if row.get("intent_id") else None
        release(conn, Reservation(id=row["id"], tier=row["tier"], model=row["model"], estimate_usd=row["estimate"],
                                  periods=tuple(periods_for(row["tier"], row["day"], intent=intent))), caps=caps)
    return len(rows)


def record_ask(conn: Connection, *, run_id: int, step: str, digest: str, plan: Plan) -> None:
    """Remember that this step waits for budget, so status says so and an approval raises the right cap."""
    assert plan.blocking is not None
    conn.execute(ASK, {"run_id": run_id, "step": step, "digest": digest, **_key(plan.blocking.period),
                       "amount": plan.shortfall_usd, "waiting": plan.choice is Choice.WAIT})


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
