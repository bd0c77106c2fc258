"""Firing the operator's schedules: each due slot becomes one intent and its queued run, once, across schedulers.

Where a slot is claimed: `tend` takes the schedule's row lock, reads again where its count stands, then inserts
the slot's `schedule_fires` row (its primary key is the claim) in the same transaction as the intent, the run and
their audit events. A second scheduler, or a second tick, waits on the row lock and then finds the slot counted;
a crash mid-slot rolls everything back, so the next tick fires it. Slots missed while opsos was down are not
fired one by one: the newest is fired once, announced as a catch-up, and the count moves past all of them.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from psycopg import Connection

from memory import link
from orchestrator import audit, intents, outbox, runs
from orchestrator.errors import NotFound
from orchestrator.intents import Constraints, parse_constraints
from orchestrator.messages import Message
from orchestrator.queue import enqueue_advance
from orchestrator.runs import RunState
from orchestrator.schedules import records, timing
from orchestrator.schedules.records import FireOutcome, Schedule, ScheduleState
from orchestrator.services import Services
from orchestrator.words import schedules as said
from orchestrator.workflows import WORKFLOWS

log = structlog.get_logger(__name__)

FAILED = frozenset({RunState.FAILED, RunState.COMPENSATED})
# Below a cent a run could not make one model call: the slot is skipped, not started to wait for budget.
LEAST_RUN_USD = 0.01


@dataclass(frozen=True)
class Tended:
    """What one tick did for a schedule: fired a slot, skipped it over budget, or paused the schedule."""

    schedule_id: int
    outcome: str
    slot: datetime | None = None
    missed: int = 0
    intent_id: int | None = None
    run_id: int | None = None


def _who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def tend_all(services: Services, *, now: datetime) -> dict[str, Any]:
    """Every active schedule's due slot, each in a transaction of its own: one that fails stops no other."""
    with services.stores.pool.connection() as conn:
        ids = records.active_ids(conn)
    done = [tended for schedule_id in ids if (tended := tend(services, schedule_id, now=now)) is not None]
    return {outcome: [t.schedule_id for t in done if t.outcome == outcome]
            for outcome in ("fired", "over_budget", "paused") if any(t.outcome == outcome for t in done)}


def tend(services: Services, schedule_id: int, *, now: datetime) -> Tended | None:
    """Pause the schedule if its runs keep failing, else fire its newest due slot unless that is counted already."""
    settings = services.settings
    with services.stores.pool.connection() as conn, conn.transaction():
        try:
            # The row lock serialises every scheduler's tick of this schedule; `counted_from` is read after it.
            schedule = records.get(conn, schedule_id, for_update=True)
        except NotFound:
            return None
        if schedule.state is not ScheduleState.ACTIVE:
            return None
        if schedule.workflow not in WORKFLOWS:
            return _pause(conn, schedule, reason="its workflow is gone", now=now,
                          message=said.paused_gone(schedule), key=f"schedule-gone:{schedule.id}")
        failed = _failing(conn, schedule, settings.schedule_failures_to_pause)
        if failed:
            return _pause(conn, schedule, reason=f"its last {len(failed)} runs failed", now=now,
                          message=said.paused_failing(schedule, failed),
                          key=f"schedule-failing:{schedule.id}:{max(failed)}", runs=failed)
        zone = ZoneInfo(schedule.timezone)
        slot = timing.latest_slot(schedule.cron, zone, now)
        if slot <= schedule.counted_from:
            return None
        missed = timing.count_between(schedule.cron, zone, schedule.counted_from, slot)
        late = now - slot > timedelta(minutes=settings.schedule_grace_minutes)
        month = slot.astimezone(zone).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        held = records.committed(conn, schedule.id, since=month)
        left = round(schedule.budget_monthly_usd - held, 2)
        outcome = FireOutcome.FIRED if left >= LEAST_RUN_USD else FireOutcome.OVER_BUDGET
        if not records.claim_slot(conn, schedule, slot, outcome=outcome, missed=missed, by=_who(), now=now):
            return None
        if outcome is FireOutcome.OVER_BUDGET:
            audit.append(conn, actor="scheduler", at=now, kind="schedule.over_budget",
                         payload={"schedule": schedule.id, "slot": slot, "committed_usd": held,
                                  "budget_monthly_usd": schedule.budget_monthly_usd})
            # Told once a month: the dedupe key names the month, so later skipped slots queue nothing.
            _tell(conn, schedule, said.over_budget(schedule, committed=held, slot=slot),
                  key=f"schedule-budget:{schedule.id}:{month:%Y-%m}")
            log.info("schedule.over_budget", schedule=schedule.id, slot=slot.isoformat(), committed=held)
            return Tended(schedule.id, "over_budget", slot, missed)
        catch_up = bool(missed) or late
        intent, run = _start(services, conn, schedule, slot=slot, budget_usd=left, catch_up=catch_up, now=now)
        records.record_intent(conn, schedule.id, slot, intent.id)
        audit.append(conn, actor="scheduler", at=now, kind="schedule.fired", intent_id=intent.id, run_id=run.id,
                     payload={"schedule": schedule.id, "slot": slot, "missed": missed, "catch_up": catch_up,
                              "budget_usd": intent.budget_usd})
        if catch_up:
            _tell(conn, schedule, said.catch_up(schedule, missed=missed, slot=slot, run_id=run.id),
                  key=f"schedule-catch-up:{schedule.id}:{slot.isoformat()}")
    # After commit, as intake does: a lost enqueue is found by the scheduler's recovery of queued runs.
    enqueue_advance(services.stores.redis, run.id, queue_name=WORKFLOWS[schedule.workflow].queue)
    log.info("schedule.fired", schedule=schedule.id, slot=slot.isoformat(), intent_id=intent.id, run_id=run.id,
             missed=missed, catch_up=catch_up)
    return Tended(schedule.id, "fired", slot, missed, intent.id, run.id)


def _start(services: Services, conn: Connection, schedule: Schedule, *, slot: datetime, budget_usd: float,
           catch_up: bool, now: datetime) -> tuple[intents.Intent, runs.Run]:
    """The slot's intent, paid from what is left of the schedule's month, and its queued run (caller's txn)."""
    settings = services.settings
    asked = parse_constraints(schedule.request, now=now, default_budget=settings.intent_budget_usd,
                              default_days=settings.intent_deadline_days)
    constraints = Constraints(budget_usd=min(asked.budget_usd, budget_usd), deadline=asked.deadline, risk=asked.risk)
    intent = intents.create(
        conn, requested_by=schedule.created_by, channel=schedule.channel, conversation=schedule.conversation,
        request=schedule.request, kind=schedule.kind, constraints=constraints, now=now,
        params={"confidence": None, "schedule": schedule.id, "slot": slot.isoformat(), "catch_up": catch_up},
        # The slot's claim already makes it once; the key says so again where intents are read.
        dedupe_key=f"schedule:{schedule.id}:{slot.isoformat()}",
    )
    if intent is None:
        raise RuntimeError(f"schedule #{schedule.id}'s slot {slot.isoformat()} has an intent but no claim")
    link(conn, ("intent", intent.id), ("schedule", schedule.id), "started_by")
    run = runs.create(conn, intent_id=intent.id, workflow=schedule.workflow, actor="scheduler", now=now)
    return intent, run


def _failing(conn: Connection, schedule: Schedule, limit: int) -> list[int]:
    """The run ids when the schedule's last `limit` runs since it was made or resumed all failed, else []."""
    latest = records.latest_runs(conn, schedule, limit=limit)
    if len(latest) < limit or any(state not in FAILED for _, state in latest):
        return []
    return [run_id for run_id, _ in latest]


def _pause(conn: Connection, schedule: Schedule, *, reason: str, now: datetime, message: Message, key: str,
           runs: list[int] | None = None) -> Tended:
    records.change_state(conn, schedule.id, ScheduleState.PAUSED, actor="scheduler", now=now, reason=reason,
                         payload={"runs": runs or []})
    _tell(conn, schedule, message, key=key)
    log.warning("schedule.paused", schedule=schedule.id, reason=reason)
    return Tended(schedule.id, "paused")


def _tell(conn: Connection, schedule: Schedule, message: Message, *, key: str) -> int | None:
    # Where the schedule was made: the operator asked for it there, so its news goes there too.
    return outbox.post(conn, channel=schedule.channel, conversation=schedule.conversation, message=message,
                       dedupe_key=key)
