"""The views only read: each runs inside a READ ONLY transaction, where PostgreSQL refuses any write."""
from __future__ import annotations

from orchestrator import Decision, anchors, intents, runs, views
from orchestrator.budget import Caps
from orchestrator.workflows import WORKFLOWS
from tests.orchestrator.helpers import OPERATOR, WINBACK, operations, pending_approval, seed


def test_every_view_reads_without_writing(services, db, work, redis):
    """Proves the read models have no side effect: a write anywhere in them would raise ReadOnlySqlTransaction."""
    seed(services)
    ops = operations(services)
    ops.submit(OPERATOR, WINBACK)
    work()
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    ops.submit(OPERATOR, WINBACK + " again")
    work()  # run 2 waits for its approval: the views show a pending one too
    settings, now = services.settings, services.now()
    with db.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        run = runs.get(conn, 1)
        intent = intents.get(conn, run.intent_id)
        views.reports.run_report(conn, run, intent, WORKFLOWS[run.workflow])
        views.reports.run_detail(conn, run, intent, WORKFLOWS[run.workflow])
        views.reports.status(conn, now=now, budget_daily_usd=5.0)
        views.digest.build(conn, settings=settings, now=now)
        views.overview.overview(conn, settings=settings, now=now)
        views.overview.run_page(conn, 2, anchors=anchors.book(settings))
        views.metrics.snapshot(conn, redis)
        from orchestrator.budget import spend

        spend.caps(conn, now=now, zone=settings.zone, caps=Caps.from_settings(settings))
        assert conn.execute("SHOW transaction_read_only").fetchone()["transaction_read_only"] == "on"
