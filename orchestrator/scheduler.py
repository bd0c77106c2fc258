"""Recurring jobs: the daily digest, SLA and budget checks, orphaned-run recovery, memory upkeep, retention, the
audit anchor and the mailbox, once per slot.

Who ticks: RQ's own `rq.cron.CronScheduler` (`opsos scheduler`) enqueues `tick(<schedule>)` every
`OPSOS_SCHEDULE_TICK_SECONDS` on the `default` queue, and any worker runs it. What runs when is
decided here, not by RQ's cron strings, because RQ 3.0's cron lacks four things this needs:
  - its cron fields are the machine's local time; the digest is at 07:30 in `OPSOS_TIMEZONE`;
  - it computes the next run from "now" at start-up, so a slot missed while everything was down is
    silently skipped; we must send the missed digest, marked late;
  - two CronSchedulers started by mistake both enqueue; we must run once per slot;
  - it reads the wall clock; tests inject a clock (`Services.clock`).
APScheduler was not used: its 3.x job stores cannot be shared by two schedulers, and once-per-slot
would still need the PostgreSQL row below. So a slot is a row: `schedule_slots(job, slot)` with a
primary key, inserted in the same transaction as the slot's work. That row survives restarts, and
a second scheduler (or a second tick) racing for the same slot waits on the key and then finds it
taken. A crash mid-slot rolls the row back, so the next tick does the slot again.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from psycopg import Connection
from psycopg.types.json import Jsonb
from redis import Redis

from agents import TIER_ORDER
from connectors import ConnectorUnavailable
from orchestrator import (
    anchors,
    audit,
    backup,
    budget,
    delivery,
    inbound,
    intents,
    jobs,
    outbox,
    retention,
    upkeep,
    words,
)
from orchestrator.inbox import poll as inbox
from orchestrator.messages import Message
from orchestrator.schedules import firing
from orchestrator.services import Services
from orchestrator.settings import Settings
from orchestrator.views import digest

log = structlog.get_logger(__name__)

# Past any model call's life (an RQ job times out after an hour): a run-less hold this old was abandoned.
STALE_RESERVATION = timedelta(hours=2)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

CLAIM = """
INSERT INTO schedule_slots (job, slot, claimed_at, claimed_by, late) VALUES (%(job)s, %(slot)s, %(now)s, %(by)s,
    %(late)s)
ON CONFLICT (job, slot) DO NOTHING RETURNING job
"""
TRY_SLOT = "SELECT pg_try_advisory_xact_lock(hashtextextended(%(slot)s, 7242003)) AS got"
# Whether this job ever ran: a late slot on the first start is a new install's, not one opsos missed.
RAN_BEFORE = "SELECT 1 FROM schedule_slots WHERE job = %(job)s AND slot < %(slot)s LIMIT 1"
RECORD = "UPDATE schedule_slots SET result = %(result)s WHERE job = %(job)s AND slot = %(slot)s"
LAST_SLOTS = "SELECT * FROM schedule_slots ORDER BY claimed_at DESC LIMIT %s"


@dataclass(frozen=True)
class Schedule:
    """A recurring job: at a local time each day, or every fixed interval (slots aligned to 2000-01-01 UTC)."""

    name: str
    daily_at: time | None = None
    every: timedelta | None = None
    # Whether a daily slot run past the grace period is marked late (the digest says so in its title);
    # upkeep done at 09:00 instead of 03:30 is simply done.
    marks_late: bool = True
    # How long the RQ job of one tick may run: a backup of a large database outlasts the default.
    job_timeout: int = 300

    def slot(self, now: datetime, zone: ZoneInfo) -> datetime:
        """The latest slot that has started at `now` (pure)."""
        if self.daily_at is not None:
            local = now.astimezone(zone)
            start = datetime.combine(local.date(), self.daily_at, tzinfo=zone)
            if start > local:
                start = datetime.combine(local.date() - timedelta(days=1), self.daily_at, tzinfo=zone)
            return start.astimezone(UTC)
        assert self.every is not None
        return EPOCH + ((now - EPOCH) // self.every) * self.every


@dataclass(frozen=True)
class SlotRun:
    """A slot this process claimed and ran."""

    job: str
    slot: datetime
    late: bool
    result: dict[str, Any]


def schedules(settings: Settings) -> dict[str, Schedule]:
    found = [
        Schedule("digest", daily_at=Settings.time_of_day(settings.digest_at)),
        Schedule("sla", every=timedelta(minutes=settings.sla_check_minutes)),
        Schedule("budget", every=timedelta(minutes=settings.budget_check_minutes)),
        Schedule("recover", every=timedelta(seconds=settings.recover_every_seconds)),
        Schedule("memory_upkeep", daily_at=Settings.time_of_day(settings.upkeep_at), marks_late=False),
        Schedule("audit_anchor", every=timedelta(minutes=settings.audit_anchor_minutes)),
        Schedule("retention", daily_at=Settings.time_of_day(settings.upkeep_at), marks_late=False),
        Schedule("schedules", every=timedelta(seconds=settings.schedule_tick_seconds)),
    ]
    if settings.imap_host:
        found.append(Schedule("mailbox", every=timedelta(minutes=settings.imap_poll_minutes)))
    if settings.backup_keep > 0:
        found.append(Schedule("backup", daily_at=Settings.time_of_day(settings.backup_at), marks_late=False,
                              job_timeout=6 * 3600))
    return {s.name: s for s in found}


def _who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_slot(services: Services, schedule: Schedule, *, now: datetime | None = None) -> SlotRun | None:
    """Run the current slot of `schedule` unless some process already did; None when it was taken."""
    settings = services.settings
    now = now or services.now()
    slot = schedule.slot(now, settings.zone)
    late = (schedule.daily_at is not None and schedule.marks_late
            and now - slot > timedelta(minutes=settings.digest_grace_minutes))
    with services.stores.pool.connection() as conn, conn.transaction():
        # The primary key is the claim: the slot's work commits with it, or neither does. A concurrent claim of
        # (job, slot) would wait on the key for as long as the work runs (a nightly backup: many minutes, and the
        # worker waiting is one the runs need), so it first tries the slot's lock and leaves it if it is held.
        if not conn.execute(TRY_SLOT, {"slot": f"{schedule.name}:{slot.isoformat()}"}).fetchone()["got"]:
            return None
        claimed = conn.execute(CLAIM, {"job": schedule.name, "slot": slot, "now": now, "by": _who(),
                                       "late": late}).fetchone()
        if claimed is None:
            return None
        if late and conn.execute(RAN_BEFORE, {"job": schedule.name, "slot": slot}).fetchone() is None:
            # Nothing was owed before opsos first ran: a new install does not open with yesterday's news.
            result: dict[str, Any] = {"skipped": "first start, after the slot's grace period"}
            conn.execute(RECORD, {"result": Jsonb(result), "job": schedule.name, "slot": slot})
            log.info("schedule.skipped", job=schedule.name, slot=slot.isoformat(), reason=result["skipped"])
            return None
        result = ACTIONS[schedule.name](services, conn, slot=slot, now=now, late=late)
        conn.execute(RECORD, {"result": Jsonb(result), "job": schedule.name, "slot": slot})
    log.info("schedule.ran", job=schedule.name, slot=slot.isoformat(), late=late, **result)
    return SlotRun(job=schedule.name, slot=slot, late=late, result=result)


def run_due(services: Services, *, now: datetime | None = None) -> list[SlotRun]:
    """Every schedule's current slot, if not done yet: the catch-up at start-up and `opsos scheduler --once`."""
    done = []
    for schedule in schedules(services.settings).values():
        ran = run_slot(services, schedule, now=now)
        if ran is not None:
            done.append(ran)
    return done


# -- what each slot does; each runs inside the claiming transaction -------------------------------


def _post_home(services: Services, conn: Connection, message: Message, *, dedupe_key: str) -> int | None:
    # Where `delivery.operator_address` says: the home channel (`OPSOS_HOME_CHANNEL`, e.g. slack:C123), else the
    # conversation last asked from, else the console; the one rule every unasked message follows.
    return delivery.post_scheduled(conn, home=services.settings.home_channel, message=message, dedupe_key=dedupe_key)


def send_digest(services: Services, conn: Connection, *, slot: datetime, now: datetime, late: bool) -> dict[str, Any]:
    settings = services.settings
    day = slot.astimezone(settings.zone).date() - timedelta(days=1)
    anchored = _anchor(services, conn, now=now)
    message = digest.build(conn, settings=settings, now=now, day=day, anchoring=anchored,
                           late_by=now - slot if late else None, due_at=slot if late else None)
    # The dedupe key repeats the slot's once-only promise at the outbox, where delivery reads.
    item = _post_home(services, conn, message, dedupe_key=f"digest:{slot.isoformat()}")
    audit.append(conn, actor="scheduler", at=now, kind="digest.sent" if item else "digest.duplicate",
                 payload={"slot": slot, "day": day, "late": late, "outbox": item})
    return {"outbox": item, "day": day.isoformat()}


def _anchor(services: Services, conn: Connection, *, now: datetime) -> anchors.Anchoring:
    # Events committed by others are what it anchors; it appends no event of its own, or every anchor would move
    # the head and the next slot would always find something new to sign.
    done = anchors.anchor(conn, anchors.book(services.settings), now=now)
    report = done.report
    if not report.trusted:
        log.error("audit.check_failed", first_broken_id=report.first_broken_id,
                  rewritten_up_to=report.rewritten_up_to, refused=[r.line for r in report.refused])
        # Once per distinct finding: the dedupe key names what was found, so each new one is told once.
        found = (f"{report.first_broken_id}:{report.rewritten_up_to}:{','.join(str(r.line) for r in report.refused)}"
                 f":{report.unanchored_from}")
        _post_home(services, conn, words.audit_alarm(report), dedupe_key=f"audit-check:{found}")
    return done


def anchor_audit(services: Services, conn: Connection, *, slot: datetime, now: datetime,
                 late: bool) -> dict[str, Any]:
    """Re-hash the events since the newest anchor and sign the head outside the database (`anchors`)."""
    done = _anchor(services, conn, now=now)
    return {"anchored": done.anchor.event_id if done.written and done.anchor else None,
            "checked": done.report.checked, "ok": done.report.ok, "refused": len(done.report.refused)}


def check_sla(services: Services, conn: Connection, *, slot: datetime, now: datetime, late: bool) -> dict[str, Any]:
    """Warn once per intent when an unfinished one nears its deadline, and once more when it misses it."""
    horizon = now + timedelta(hours=services.settings.sla_warn_hours)
    alerted = []
    for row in conn.execute(digest.AT_RISK, {"horizon": horizon}).fetchall():
        intent = intents.get(conn, row["intent_id"])
        stage = "missed" if intent.deadline <= now else "at_risk"
        message = words.sla_at_risk(intent, row["run_id"], row["state"], now=now, zone=services.settings.zone)
        if _post_home(services, conn, message, dedupe_key=f"sla:{intent.id}:{stage}") is not None:
            audit.append(conn, actor="scheduler", at=now, kind=f"sla.{stage}", intent_id=intent.id,
                         run_id=row["run_id"],
                         payload={"deadline": intent.deadline, "state": row["state"]})
            alerted.append(intent.id)
    return {"alerted": alerted}


def check_budget(services: Services, conn: Connection, *, slot: datetime, now: datetime,
                 late: bool) -> dict[str, Any]:
    """Alert at 50 / 80 / 100 % of every cap the ledger keeps (overall and per tier, by day and by month),
    once per threshold and period: the same standings, raises included, and the same dedupe keys as the
    alerts a model call posts itself, so neither repeats the other."""
    settings = services.settings
    caps = budget.Caps.from_settings(settings)
    today = budget.local_today(now, settings)
    released = budget.release_stale(conn, before=now - STALE_RESERVATION, caps=caps)
    found = {standing.period: standing
             for standings in budget.standings(conn, tiers=list(TIER_ORDER), today=today, caps=caps).values()
             for standing in standings}
    channel, conversation = delivery.operator_address(conn, settings.home_channel)
    alerts = budget.post_alerts(conn, [found[period] for period in sorted(found)], channel=channel,
                                conversation=conversation, now=now)
    return {"alerts": alerts, "released": released}


def recover(services: Services, conn: Connection, *, slot: datetime, now: datetime, late: bool) -> dict[str, Any]:
    return {"recovered": jobs.recover_runs(services), "stripe_events": inbound.recover(services)}


def memory_upkeep(services: Services, conn: Connection, *, slot: datetime, now: datetime,
                  late: bool) -> dict[str, Any]:
    """Summarise old interactions, then reclaim memories past retention; each audited."""
    # Summaries first, each with its event in its own transaction: `conn` must not yet hold the
    # audit chain's lock, or those events would wait on this transaction. It also gives an
    # interaction whose retention ends today one last chance to be summarised before it goes.
    summaries = upkeep.summarise_interactions(services, now)
    # The removal and its events commit with this slot's claim, so a slot is reclaimed exactly once.
    removed = upkeep.reclaim_memories(services, now, conn=conn)
    return {"summarised": [s.subject for s in summaries], "reclaimed": [r.id for r in removed]}


def prune(services: Services, conn: Connection, *, slot: datetime, now: datetime, late: bool) -> dict[str, Any]:
    """Prune what `OPSOS_RETENTION_DAYS` lets go; the deletions commit with the slot's claim, or neither does."""
    pruned = retention.prune(conn, now=now, older_than_days=services.settings.retention_days)
    return {"pruned": pruned.counts}


def fire_schedules(services: Services, conn: Connection, *, slot: datetime, now: datetime,
                   late: bool) -> dict[str, Any]:
    """The operator's own schedules (`schedules.firing`): each due one fires its slot once. Each schedule commits in
    a transaction of its own, where its slot's claim is, not with this tick's: one schedule's failure stops no other."""
    return firing.tend_all(services, now=now)


def read_mailbox(services: Services, conn: Connection, *, slot: datetime, now: datetime,
                 late: bool) -> dict[str, Any]:
    """Read new mail (`inbox.poll`). Each message commits in its own transaction, not with this slot's claim: a
    poll that dies half-way keeps what it read, and the cursor, not the slot, says where the next one starts."""
    mailbox = inbox.mailbox_of(services.settings)
    if mailbox is None:
        return {"skipped": "no OPSOS_IMAP_HOST"}
    try:
        return inbox.poll(services, mailbox).model_dump()
    except ConnectorUnavailable as error:
        log.warning("mailbox.unavailable", folder=mailbox.folder, error=str(error))
        # Once a day while it lasts: a changed password must not silently stop the customers' mail reaching opsos.
        day = now.astimezone(services.settings.zone).date()
        _post_home(services, conn, words.mailbox_unreadable(folder=mailbox.folder, error=str(error)),
                   dedupe_key=f"mailbox-unreadable:{mailbox.folder}:{day.isoformat()}")
        return {"unavailable": str(error)}


def nightly_backup(services: Services, conn: Connection, *, slot: datetime, now: datetime,
                   late: bool) -> dict[str, Any]:
    """Back up into OPSOS_BACKUP_DIR and keep the newest OPSOS_BACKUP_KEEP. The dump reads its own snapshot on its
    own connection, so this claim holds no lock while it runs; a failure is recorded and told once, not retried
    every tick: a full disk stays full, and `opsos backup` tries again by hand."""
    settings = services.settings
    try:
        made = backup.make(settings, services.stores.database_url, dest=backup.default_path(settings, now), now=now)
    except (backup.ToolFailed, OSError) as error:
        log.error("backup.failed", error=str(error))
        audit.append(conn, actor="scheduler", at=now, kind="backup.failed", payload={"slot": slot, "error": str(error)})
        _post_home(services, conn, words.backup_failed(str(error)), dedupe_key=f"backup-failed:{slot.isoformat()}")
        return {"failed": str(error)}
    removed = backup.prune(settings.backup_folder, keep=settings.backup_keep)
    head = made.head.event_id if made.head else None
    audit.append(conn, actor="scheduler", at=now, kind="backup.made",
                 payload={"path": str(made.path), "bytes": made.bytes, "head": head, "chain_ok": made.chain_ok})
    if not made.chain_ok:
        _post_home(services, conn, words.backup_unsigned(), dedupe_key=f"backup-unsigned:{slot.isoformat()}")
    return {"path": str(made.path), "bytes": made.bytes, "head": head, "chain_ok": made.chain_ok,
            "removed": [p.name for p in removed]}


SlotAction = Callable[..., dict[str, Any]]
ACTIONS: dict[str, SlotAction] = {"digest": send_digest, "sla": check_sla, "budget": check_budget,
                                  "recover": recover, "memory_upkeep": memory_upkeep, "audit_anchor": anchor_audit,
                                  "retention": prune, "mailbox": read_mailbox,
                                  "backup": nightly_backup, "schedules": fire_schedules}


# -- the RQ side ------------------------------------------------------------------------------------


def tick(name: str) -> str:
    """RQ job: run `name`'s current slot if nobody has. Enqueued by the CronScheduler of `opsos scheduler`."""
    services = jobs.services()
    ran = run_slot(services, schedules(services.settings)[name])
    return "taken" if ran is None else f"ran {ran.slot.isoformat()}"


def cron(redis: Redis, settings: Settings, *, name: str = "") -> Any:
    """An RQ CronScheduler that enqueues a tick of every schedule each `schedule_tick_seconds` (first one now)."""
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=redis, name=name)
    every = settings.schedule_tick_seconds
    for schedule in schedules(settings).values():
        # A tick nobody ran within a few intervals is dropped: the next one does the same work.
        scheduler.register(tick, queue_name="default", args=(schedule.name,), interval=every,
                           job_timeout=schedule.job_timeout, result_ttl=600, ttl=max(300, 5 * every),
                           name=f"opsos.{schedule.name}")
    return scheduler


def send_digest_now(services: Services, *, channel: str, conversation: str) -> int | None:
    """`/ops digest`: today's digest to the asker, outside the schedule (it takes no slot)."""
    now = services.now()
    with services.stores.pool.connection() as conn, conn.transaction():
        message = digest.build(conn, settings=services.settings, now=now)
        item = outbox.post(conn, channel=channel, conversation=conversation, message=message)
        audit.append(conn, actor="scheduler", at=services.now(), kind="digest.requested",
                     payload={"channel": channel, "outbox": item})
    return item

