"""The dashboard's view of the durable record: one read for the main page, one for a run's page."""
from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import Connection
from psycopg.pq import TransactionStatus
from pydantic import BaseModel

from orchestrator import agent_calls, anchors, approvals, audit, budget, intents, replay, runs, steps, words
from orchestrator.anchors import AnchorBook, AnchorReport
from orchestrator.approvals import Approval
from orchestrator.audit import AuditEvent
from orchestrator.budget import spend
from orchestrator.inbox import records as inbox
from orchestrator.replay import ReplayReport
from orchestrator.settings import Settings
from orchestrator.views import charts, digest

PENDING_INTENTS = """
SELECT i.id, i.request, i.kind, i.requested_by, i.created_at, i.deadline, r.id AS run_id, r.state
FROM intents i JOIN runs r ON r.intent_id = i.id
WHERE r.state NOT IN ('succeeded', 'failed', 'compensated', 'cancelled') ORDER BY i.deadline, i.id
"""
RUNS_BY_STATE = "SELECT state, count(*) AS n FROM runs GROUP BY state ORDER BY state"
FAILED_RECENTLY = """
SELECT r.id, r.state, r.reason, r.workflow, r.updated_at, i.request,
       (SELECT s.error FROM steps s WHERE s.run_id = r.id AND s.error IS NOT NULL
        ORDER BY s.finished_at DESC NULLS LAST LIMIT 1) AS last_error
FROM runs r JOIN intents i ON i.id = r.intent_id
WHERE r.state IN ('failed', 'compensated') AND r.finished_at >= %(since)s ORDER BY r.finished_at DESC LIMIT 20
"""
RECENT_AUDIT = "SELECT * FROM audit_events ORDER BY id DESC LIMIT %s"
DEAD_LETTERS = "SELECT channel, count(*) AS n FROM outbox WHERE state = 'dead' GROUP BY channel ORDER BY channel"


class PendingIntent(BaseModel):
    id: int
    request: str
    kind: str
    requested_by: str
    created_at: datetime
    deadline: datetime
    run_id: int
    state: str


class Overview(BaseModel):
    now: datetime
    pending: list[PendingIntent]
    runs_by_state: dict[str, int]
    failing: list[digest.StuckRun]
    approvals: list[Approval]
    caps: list[spend.Cap]
    chart_png: bytes
    audit: list[AuditEvent]
    chain: AnchorReport
    # Messages given up on after too many failed attempts, per channel.
    dead_letters: dict[str, int]

    @property
    def chain_text(self) -> str:
        return words.chain_verdict(self.chain)


class RunPage(BaseModel):
    run: runs.Run
    intent: intents.Intent
    steps: list[steps.StepRecord]
    calls: list[agent_calls.AgentCall]
    cited: list[str]
    approvals: list[Approval]
    events: list[AuditEvent]
    verdict: ReplayReport
    # Customers' replies to the emails this run sent, oldest first.
    replies: list[inbox.Inbound] = []

    @property
    def chain_text(self) -> str:
        return words.chain_verdict(self.verdict.chain)

    @property
    def rationale(self) -> list[tuple[str, str]]:
        """(step, why) for each agent call that said why: the agent's own words, as stored."""
        return [(c.step, str(c.output["rationale"])) for c in self.calls if c.output.get("rationale")]


def overview(conn: Connection, *, settings: Settings, now: datetime, audit_limit: int = 50) -> Overview:
    """Everything the main page shows. The chain is checked against its anchors: only the events after the newest
    anchor are re-hashed, so a page load does not grow with the log (the anchor job re-hashes the rest)."""
    stuck = conn.execute(digest.STUCK, {"stuck_before": now - timedelta(minutes=settings.stuck_minutes)}).fetchall()
    failed = conn.execute(FAILED_RECENTLY, {"since": now - timedelta(days=7)}).fetchall()
    return Overview(
        now=now,
        pending=[PendingIntent.model_validate(r) for r in conn.execute(PENDING_INTENTS)],
        runs_by_state={r["state"]: r["n"] for r in conn.execute(RUNS_BY_STATE)},
        failing=[digest.StuckRun.model_validate(r) for r in [*stuck, *failed]],
        approvals=approvals.pending(conn),
        caps=spend.caps(conn, now=now, zone=settings.zone, caps=budget.Caps.from_settings(settings)),
        chart_png=charts.budget_burn_png(spend.burn(conn, now=now, zone=settings.zone),
                                         daily_cap=settings.budget_daily_usd),
        audit=[AuditEvent.model_validate(r) for r in conn.execute(RECENT_AUDIT, (audit_limit,))],
        chain=anchors.verify(conn, anchors.book(settings)),
        dead_letters={r["channel"]: r["n"] for r in conn.execute(DEAD_LETTERS)},
    )


def run_page(conn: Connection, run_id: int, *, anchors: AnchorBook) -> RunPage:
    """A run with its steps, agent calls (rationale, cited memories), approvals, audit events, replay verdict and
    the replies to its emails.

    Raises NotFound if there is no such run.
    """
    if conn.info.transaction_status is TransactionStatus.IDLE:
        # One snapshot for the page: the verdict compares events with rows, and a transition committing
        # between those reads would otherwise show as a disagreement.
        conn.execute(replay.SNAPSHOT)
    run = runs.get(conn, run_id)
    calls = agent_calls.for_run(conn, run_id)
    cited: list[str] = []
    for call in calls:
        cited += [str(c) for c in call.output.get("cited", []) if str(c) not in cited]
    found: list[Approval] = [approvals.Approval.model_validate(r) for r in conn.execute(
        "SELECT * FROM approvals WHERE run_id = %s ORDER BY requested_at", (run_id,))]
    return RunPage(run=run, intent=intents.get(conn, run.intent_id),
                   steps=list(steps.records(conn, run_id).values()), calls=calls, cited=cited, approvals=found,
                   events=audit.events(conn, run_id=run_id), verdict=replay.check(conn, run_id, anchors=anchors),
                   replies=inbox.for_run(conn, run_id))
