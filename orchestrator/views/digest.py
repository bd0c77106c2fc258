"""The daily digest: what finished yesterday, what waits for the operator, what is stuck or late, what it costs.

`gather` reads the durable record (I/O); `compose` turns it into one channel-neutral Message (pure),
with the approval and Resume / Cancel buttons inside and the budget burn chart attached as a PNG.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from psycopg import Connection
from pydantic import BaseModel

from orchestrator import approvals, budget, words
from orchestrator.anchors import Anchoring
from orchestrator.approvals import Approval
from orchestrator.budget import spend
from orchestrator.messages import Attachment, Fact, Message, MessageKind, Section
from orchestrator.settings import Settings
from orchestrator.views import charts

FINISHED_BETWEEN = """
SELECT r.id, r.state, r.reason, r.workflow, i.request FROM runs r JOIN intents i ON i.id = r.intent_id
WHERE r.finished_at >= %(start)s AND r.finished_at < %(end)s ORDER BY r.finished_at, r.id
"""
# Paused runs (an outside system was down, or the operator took over) and live runs nobody moved for a while.
STUCK = """
SELECT r.id, r.state, r.reason, r.workflow, r.updated_at, i.request,
       (SELECT s.error FROM steps s WHERE s.run_id = r.id AND s.error IS NOT NULL
        ORDER BY s.finished_at DESC NULLS LAST LIMIT 1) AS last_error
FROM runs r JOIN intents i ON i.id = r.intent_id
WHERE r.state = 'paused' OR (r.state IN ('queued', 'running', 'compensating') AND r.updated_at < %(stuck_before)s)
ORDER BY r.id
"""
# Unfinished intents whose deadline falls before the horizon (overdue ones included).
AT_RISK = """
SELECT i.id AS intent_id, r.id AS run_id, r.state, i.deadline FROM intents i JOIN runs r ON r.intent_id = i.id
WHERE r.state NOT IN ('succeeded', 'failed', 'compensated', 'cancelled') AND i.deadline < %(horizon)s
ORDER BY i.deadline, i.id
"""
LAST_BACKUP = """
SELECT slot, result FROM schedule_slots WHERE job = 'backup' AND result IS NOT NULL ORDER BY slot DESC LIMIT 1
"""
# The digest carries at most this many approvals with buttons; the rest are counted and on the dashboard.
MAX_APPROVAL_BUTTONS = 5
MAX_RUN_BUTTONS = 5


class FinishedRun(BaseModel):
    id: int
    state: str
    reason: str
    workflow: str
    request: str


class StuckRun(BaseModel):
    id: int
    state: str
    reason: str
    workflow: str
    request: str
    updated_at: datetime
    last_error: str | None = None

    @property
    def error(self) -> str:
        if self.last_error or self.reason:
            return self.last_error or self.reason
        if self.state == "paused":
            return f"paused since {self.updated_at:%Y-%m-%d %H:%M} UTC"
        return f"no progress since {self.updated_at:%Y-%m-%d %H:%M} UTC"


class AtRisk(BaseModel):
    intent_id: int
    run_id: int
    state: str
    deadline: datetime


class DigestData(BaseModel):
    day: date
    now: datetime
    finished: list[FinishedRun]
    waiting: list[Approval]
    stuck: list[StuckRun]
    at_risk: list[AtRisk]
    caps: list[spend.Cap]
    tiers: list[spend.TierSpend]
    burn: list[spend.BurnDay]
    daily_cap: float
    # The newest nightly backup's slot and outcome; `backups_kept` 0 means nightly backups are off.
    backups_kept: int = 0
    backup_slot: datetime | None = None
    backup_result: dict[str, Any] | None = None


def gather(conn: Connection, *, settings: Settings, now: datetime, day: date | None = None) -> DigestData:
    """Read the digest's facts as of `now`; `day` is the day it reports on (default: yesterday, operator's time)."""
    zone = settings.zone
    covered = day or spend.local_day(now, zone) - timedelta(days=1)
    start, end = spend.day_start(covered, zone), spend.day_start(covered + timedelta(days=1), zone)
    finished = [FinishedRun.model_validate(r) for r in conn.execute(FINISHED_BETWEEN, {"start": start, "end": end})]
    stuck_before = now - timedelta(minutes=settings.stuck_minutes)
    stuck = [StuckRun.model_validate(r) for r in conn.execute(STUCK, {"stuck_before": stuck_before})]
    at_risk = [AtRisk.model_validate(r) for r in
               conn.execute(AT_RISK, {"horizon": now + timedelta(hours=settings.sla_warn_hours)})]
    backup = conn.execute(LAST_BACKUP).fetchone() if settings.backup_keep > 0 else None
    return DigestData(
        day=covered, now=now, finished=finished, waiting=approvals.pending(conn), stuck=stuck, at_risk=at_risk,
        caps=spend.caps(conn, now=now, zone=zone, caps=budget.Caps.from_settings(settings)),
        tiers=spend.by_tier(conn, start=start, end=end),
        burn=spend.burn(conn, now=now, zone=zone, days=30),
        daily_cap=settings.budget_daily_usd,
        backups_kept=settings.backup_keep,
        backup_slot=backup["slot"] if backup else None,
        backup_result=backup["result"] if backup else None,
    )


def compose(data: DigestData, *, zone, late_by: timedelta | None = None, due_at: datetime | None = None,
            chart: bool = True, anchoring: Anchoring | None = None) -> Message:
    """The digest as one message (pure): sections in the order the operator acts on them, buttons inside.

    `anchoring` is the audit anchor the scheduler made for this digest: its line goes last, into the chat history.
    """
    actions = []
    waiting_facts = []
    for approval in data.waiting:
        expired = approval.expired(data.now)
        note = " (expired: resume the run to ask again)" if expired else ""
        waiting_facts.append(Fact(label=f"#{approval.run_id} {approval.id}",
                                  value=f"{approval.request.what}{note}"))
        if len(actions) < 2 * MAX_APPROVAL_BUTTONS:
            actions += (words.run_actions(approval.run_id) if expired
                        else words.digest_approval_actions(approval.id, approval.run_id))
    stuck_facts = []
    for number, run in enumerate(data.stuck):
        stuck_facts.append(Fact(label=f"#{run.id} {run.state}", value=f"{run.request[:60]} — {run.error}"))
        if number < MAX_RUN_BUTTONS:
            actions += words.run_actions(run.id, resume=run.state == "paused")
    failed = [r for r in data.finished if r.state != "succeeded"]
    today = data.caps[0]
    sections = [
        Section(title="Finished yesterday", text="" if data.finished else words.digest_empty("finished"), facts=[
            Fact(label=f"#{r.id} {r.state}", value=f"{r.request[:60]}" + (f" — {r.reason}" if r.reason else ""))
            for r in data.finished
        ]),
        Section(title="Waiting for you", text="" if waiting_facts else words.digest_empty("waiting"),
                facts=waiting_facts),
        Section(title="Failing or stuck", text="" if stuck_facts else words.digest_empty("stuck"), facts=stuck_facts),
        Section(title="At risk of missing the deadline", text="" if data.at_risk else words.digest_empty("at_risk"),
                facts=[Fact(label=f"intent #{r.intent_id}", value=f"run #{r.run_id} {r.state}, due "
                            f"{r.deadline.astimezone(zone):%a %d %b %H:%M}") for r in data.at_risk]),
        Section(title="Model spend", facts=[
            *[Fact(label=cap.name.capitalize(), value=f"{words.money(cap.spent)} of {words.money(cap.cap)} "
                   f"({cap.share:.0%}, {cap.tokens} tokens"
                   + (f", {words.money(cap.reserved)} in flight)" if cap.reserved else ")")) for cap in data.caps],
            *[Fact(label=f"Yesterday, {t.tier} tier", value=f"{words.money(t.usd)} ({t.tokens} tokens)")
              for t in data.tiers],
        ]),
    ]
    if data.backups_kept > 0:
        sections.append(Section(title=words.DIGEST_BACKUP_TITLE, text=words.digest_backup(
            data.backup_slot, data.backup_result, zone=zone, keep=data.backups_kept)))
    if anchoring is not None:
        sections.append(Section(title=words.DIGEST_AUDIT_TITLE, text=words.digest_audit(anchoring)))
    attachments = []
    if chart:
        png = charts.budget_burn_png(data.burn, daily_cap=data.daily_cap)
        attachments.append(Attachment.of(png, filename=f"budget-burn-{data.day.isoformat()}.png",
                                         title="Model spend per day, last 30 days"))
    return Message(
        kind=MessageKind.REPORT,
        title=words.digest_title(data.day, late_by=late_by, due_at=due_at.astimezone(zone) if due_at else None),
        text=words.digest_summary(finished=len(data.finished), failed=len(failed), waiting=len(data.waiting),
                                  stuck=len(data.stuck), at_risk=len(data.at_risk),
                                  spent=words.money(today.spent), cap=words.money(today.cap)),
        sections=sections,
        actions=actions,
        attachments=attachments,
    )


def build(conn: Connection, *, settings: Settings, now: datetime, late_by: timedelta | None = None,
          due_at: datetime | None = None, day: date | None = None, anchoring: Anchoring | None = None) -> Message:
    """Gather and compose in one call: what the scheduler and `opsos digest` use."""
    data = gather(conn, settings=settings, now=now, day=day)
    return compose(data, zone=settings.zone, late_by=late_by, due_at=due_at, anchoring=anchoring)
