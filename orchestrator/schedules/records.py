"""The `schedules` and `schedule_fires` tables: a confirmed schedule, its state, and each slot it fired or skipped.

Records do not talk: these functions change rows, append their audit events in the caller's transaction and
return what changed; `chat.schedules` and `schedules.firing` decide what the operator is told.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg import Connection
from pydantic import BaseModel

from orchestrator import audit
from orchestrator.errors import NotFound, OpsError
from orchestrator.runs import RunState


class ScheduleState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    REMOVED = "removed"


class FireOutcome(StrEnum):
    FIRED = "fired"
    OVER_BUDGET = "over_budget"


class ScheduleUnchanged(OpsError):
    """A pause, resume or removal the schedule's state does not allow: `state` is the one it is in."""

    def __init__(self, schedule_id: int, state: ScheduleState) -> None:
        super().__init__(f"schedule #{schedule_id} is {state.value} already")
        self.schedule_id = schedule_id
        self.state = state


class ScheduleTerms(BaseModel):
    """What a schedule runs, when, on whose behalf and within what budget: what the operator confirms."""

    cron: str
    timezone: str
    request: str
    kind: str
    workflow: str
    budget_monthly_usd: float
    created_by: str
    channel: str
    conversation: str


class Schedule(ScheduleTerms):
    id: int
    state: ScheduleState
    reason: str
    created_at: datetime
    active_since: datetime
    last_slot: datetime | None

    @property
    def counted_from(self) -> datetime:
        """Slots after this are owed: since it was made or resumed, and after the newest one fired or skipped."""
        return max(self.active_since, self.last_slot) if self.last_slot else self.active_since


INSERT = """
INSERT INTO schedules (proposal, cron, timezone, request, kind, workflow, budget_monthly_usd, created_by, channel,
    conversation, created_at, active_since)
VALUES (%(proposal)s, %(cron)s, %(timezone)s, %(request)s, %(kind)s, %(workflow)s, %(budget)s, %(created_by)s,
    %(channel)s, %(conversation)s, %(now)s, %(now)s)
ON CONFLICT (proposal) DO NOTHING
RETURNING *
"""
BY_PROPOSAL = "SELECT * FROM schedules WHERE proposal = %s"
GET = "SELECT * FROM schedules WHERE id = %s"
# NO KEY UPDATE: the lock guards the schedule's columns, not its key, so it does not block the foreign-key checks
# of its fires being written elsewhere.
LOCK = "SELECT * FROM schedules WHERE id = %s FOR NO KEY UPDATE"
LISTED = "SELECT * FROM schedules WHERE state <> 'removed' ORDER BY id"
ACTIVE_IDS = "SELECT id FROM schedules WHERE state = 'active' ORDER BY id"
SET_STATE = """
UPDATE schedules SET state = %(state)s, reason = %(reason)s,
    active_since = CASE WHEN %(resumed)s THEN %(now)s ELSE active_since END
WHERE id = %(id)s RETURNING *
"""
FIRE = """
INSERT INTO schedule_fires (schedule_id, slot, fired_at, fired_by, outcome, missed)
VALUES (%(id)s, %(slot)s, %(now)s, %(by)s, %(outcome)s, %(missed)s)
ON CONFLICT (schedule_id, slot) DO NOTHING RETURNING slot
"""
FIRED_INTENT = "UPDATE schedule_fires SET intent_id = %(intent)s WHERE schedule_id = %(id)s AND slot = %(slot)s"
LAST_SLOT = "UPDATE schedules SET last_slot = %(slot)s WHERE id = %(id)s"
# What this month's runs of a schedule hold against its cap: a finished run what it spent, a live one at least its
# whole budget (it may still spend all of it), so two runs alive at once can never together pass the cap.
COMMITTED = """
SELECT coalesce(sum(CASE WHEN r.state = ANY(%(finished)s)
                         THEN coalesce(p.spent_usd, 0)
                         ELSE greatest(i.budget_usd, coalesce(p.spent_usd, 0) + coalesce(p.reserved_usd, 0)) END),
                0)::float8 AS committed
FROM schedule_fires f
JOIN intents i ON i.id = f.intent_id
JOIN runs r ON r.intent_id = i.id
LEFT JOIN budget_periods p ON p.scope = 'intent:' || i.id AND p.period = 'intent'
WHERE f.schedule_id = %(id)s AND f.slot >= %(since)s
"""
# The newest runs a schedule started since it was made or resumed, newest first.
LATEST_RUNS = """
SELECT r.id, r.state FROM schedule_fires f JOIN runs r ON r.intent_id = f.intent_id
WHERE f.schedule_id = %(id)s AND f.slot >= %(since)s
ORDER BY f.slot DESC, r.id DESC LIMIT %(limit)s
"""


def create(conn: Connection, *, proposal: str, cron: str, timezone: str, request: str, kind: str, workflow: str,
           budget_monthly_usd: float, created_by: str, channel: str, conversation: str, confirmed_by: str,
           now: datetime) -> Schedule | None:
    """Store a confirmed schedule and its audit event; None when this proposal was stored already (a second click)."""
    row = conn.execute(INSERT, {"proposal": proposal, "cron": cron, "timezone": timezone, "request": request,
                                "kind": kind, "workflow": workflow, "budget": budget_monthly_usd,
                                "created_by": created_by, "channel": channel, "conversation": conversation,
                                "now": now}).fetchone()
    if row is None:
        return None
    schedule = Schedule.model_validate(row)
    audit.append(conn, actor=confirmed_by, at=now, kind="schedule.created",
                 payload={"schedule": schedule.id, "cron": cron, "timezone": timezone, "request": request,
                          "kind": kind, "workflow": workflow, "budget_monthly_usd": budget_monthly_usd})
    return schedule


def by_proposal(conn: Connection, proposal: str) -> Schedule | None:
    row = conn.execute(BY_PROPOSAL, (proposal,)).fetchone()
    return Schedule.model_validate(row) if row else None


def get(conn: Connection, schedule_id: int, *, for_update: bool = False) -> Schedule:
    row = conn.execute(LOCK if for_update else GET, (schedule_id,)).fetchone()
    if row is None or row["state"] == ScheduleState.REMOVED:
        raise NotFound("schedule", schedule_id)
    return Schedule.model_validate(row)


def listed(conn: Connection) -> list[Schedule]:
    return [Schedule.model_validate(row) for row in conn.execute(LISTED).fetchall()]


def active_ids(conn: Connection) -> list[int]:
    return [row["id"] for row in conn.execute(ACTIVE_IDS).fetchall()]


_MOVES = {ScheduleState.PAUSED: {ScheduleState.ACTIVE}, ScheduleState.ACTIVE: {ScheduleState.PAUSED},
          ScheduleState.REMOVED: {ScheduleState.ACTIVE, ScheduleState.PAUSED}}


def change_state(conn: Connection, schedule_id: int, to: ScheduleState, *, actor: str, now: datetime,
                 reason: str = "", payload: dict[str, Any] | None = None) -> Schedule:
    """Pause, resume or remove a schedule with its audit event (caller's transaction; takes the row lock).

    Resuming counts slots from now: what fell due while it was paused is not owed. Raises NotFound, or
    ScheduleUnchanged when its state does not allow the move.
    """
    current = get(conn, schedule_id, for_update=True)
    if current.state not in _MOVES[to]:
        raise ScheduleUnchanged(schedule_id, current.state)
    row = conn.execute(SET_STATE, {"state": to, "reason": reason, "resumed": to is ScheduleState.ACTIVE,
                                   "now": now, "id": schedule_id}).fetchone()
    event = {ScheduleState.ACTIVE: "schedule.resumed", ScheduleState.PAUSED: "schedule.paused",
             ScheduleState.REMOVED: "schedule.removed"}[to]
    audit.append(conn, actor=actor, at=now, kind=event, payload={"schedule": schedule_id, "reason": reason,
                                                                   **(payload or {})})
    return Schedule.model_validate(row)


def claim_slot(conn: Connection, schedule: Schedule, slot: datetime, *, outcome: FireOutcome, missed: int,
               by: str, now: datetime) -> bool:
    """Claim `slot` of `schedule` and move its count past it, in the caller's transaction; False if it was taken.

    The primary key is the claim: a second scheduler's claim of the same slot waits on the key until the
    first transaction ends, then inserts nothing.
    """
    claimed = conn.execute(FIRE, {"id": schedule.id, "slot": slot, "now": now, "by": by, "outcome": outcome,
                                  "missed": missed}).fetchone()
    if claimed is None:
        return False
    conn.execute(LAST_SLOT, {"slot": slot, "id": schedule.id})
    return True


def record_intent(conn: Connection, schedule_id: int, slot: datetime, intent_id: int) -> None:
    conn.execute(FIRED_INTENT, {"intent": intent_id, "id": schedule_id, "slot": slot})


def committed(conn: Connection, schedule_id: int, *, since: datetime) -> float:
    """What the schedule's runs of slots since `since` spent (finished) or may still spend (live), in USD."""
    finished = [state.value for state in (RunState.SUCCEEDED, RunState.FAILED, RunState.COMPENSATED,
                                          RunState.CANCELLED)]
    return conn.execute(COMMITTED, {"finished": finished, "id": schedule_id, "since": since}).fetchone()["committed"]


def latest_runs(conn: Connection, schedule: Schedule, *, limit: int) -> list[tuple[int, RunState]]:
    """The newest `limit` runs the schedule started since it was made or resumed, newest first."""
    rows = conn.execute(LATEST_RUNS, {"id": schedule.id, "since": schedule.active_since, "limit": limit}).fetchall()
    return [(row["id"], RunState(row["state"])) for row in rows]
