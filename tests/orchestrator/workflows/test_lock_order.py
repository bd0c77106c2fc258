"""Lock order: the run's row lock before the audit chain's, in every writer (review: `stop_and_ask` deadlock)."""
from __future__ import annotations

import threading
import time

import psycopg
from psycopg.rows import dict_row

from orchestrator import audit, intents, runs
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.proposals import stop_and_ask
from tests.orchestrator.helpers import OPERATOR, run_state


def test_asking_for_a_missing_detail_never_holds_the_chain_while_waiting_for_the_run(services, db, database_url):
    """Proves the order: while someone holds run 1's row (a `pause 1` being typed), the ask waits for it without
    holding the audit chain, so every other writer goes on. Before, it took the chain lock first and waited for
    the row while holding it: the pause, which holds the row and then wants the chain, deadlocked with it."""
    from orchestrator.chat import intake

    intake.start(services, OPERATOR, request="email someone", kind="outreach_email", workflow="outreach_email",
                 params={})
    with db.connection() as conn:
        run = runs.get(conn, 1)
        intent = intents.get(conn, run.intent_id)
    ctx = StepContext(services=services, run=run, intent=intent, step="understand", results={})

    holder = psycopg.connect(database_url)
    holder.execute("SELECT 1 FROM runs WHERE id = 1 FOR UPDATE")  # a transaction holding the run's row
    asking = threading.Thread(target=stop_and_ask, args=(ctx, "outreach email", ["recipient"]))
    asking.start()
    try:
        _until_a_backend_waits_for_a_row_lock(database_url)
        with psycopg.connect(database_url, row_factory=dict_row) as other:
            other.execute("SET lock_timeout = '5s'")  # the chain must stay free while the ask waits
            audit.append(other, actor="tester", kind="test.meanwhile", at=services.now())
            other.commit()
    finally:
        holder.rollback()
        holder.close()
        asking.join(10)
    assert not asking.is_alive() and run_state(db, 1) == "cancelled"


def _until_a_backend_waits_for_a_row_lock(database_url: str) -> None:
    """The ask is now blocked on the run's row (whatever it took before that, it holds now)."""
    with psycopg.connect(database_url, autocommit=True) as probe:
        for _ in range(200):
            waiting = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND wait_event = 'transactionid'").fetchone()[0]
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the ask never waited for the run's row")
