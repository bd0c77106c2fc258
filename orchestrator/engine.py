"""The engine: `advance(run)` moves a run through its workflow's steps until it finishes or must wait.

Plain synchronous code, run inside an RQ job. Only one process advances a run at a time: a session
advisory lock on the run id, held on a connection of its own, is released by PostgreSQL the moment
that connection dies, so a worker killed mid-step leaves the run free for the next one.
"""
from __future__ import annotations

import psycopg
import structlog

from connectors import ConnectorUnavailable
from memory import link, step_node
from orchestrator import audit, intents, outbox, runs, steps, words
from orchestrator.approvals import AwaitingApproval
from orchestrator.keys import step_key
from orchestrator.runs import RunEvent, RunState
from orchestrator.services import Services
from orchestrator.steps import StepState
from orchestrator.transitions import ask_approval, move_run
from orchestrator.views import reports
from orchestrator.workflows import WORKFLOWS
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import next_step

log = structlog.get_logger(__name__)

RUN_LOCK_CLASS = 42
TRY_LOCK = "SELECT pg_try_advisory_lock(%s, %s::int) AS ok"


def try_lock_run(conn: psycopg.Connection, run_id: int) -> bool:
    return bool(conn.execute(TRY_LOCK, (RUN_LOCK_CLASS, run_id)).fetchone()[0])


def advance(services: Services, run_id: int) -> RunState:
    """Run the run's next steps. Returns the state it stopped in; does nothing if another worker holds it."""
    with psycopg.connect(services.stores.database_url, autocommit=True) as lock_conn:
        if not try_lock_run(lock_conn, run_id):
            log.info("run.busy", run_id=run_id)
            with services.stores.pool.connection() as conn:
                return runs.get(conn, run_id).state
        # Closing lock_conn on the way out releases the lock.
        return _advance_locked(services, run_id)


def _advance_locked(services: Services, run_id: int) -> RunState:
    pool = services.stores.pool
    while True:
        with pool.connection() as conn, conn.transaction():
            run = runs.get(conn, run_id, for_update=True)
            if run.state is RunState.QUEUED:
                run = move_run(conn, run_id, RunEvent.START, actor="worker", now=services.now())
            if run.state is not RunState.RUNNING:
                return run.state
            intent = intents.get(conn, run.intent_id)
            workflow = WORKFLOWS[run.workflow]
            records = steps.records(conn, run_id)
            step = next_step(workflow, records)
            if step is None:
                run = move_run(conn, run_id, RunEvent.SUCCEED, actor="worker", now=services.now())
                outbox.post(conn, channel=intent.channel, conversation=intent.conversation, intent_id=intent.id,
                            run_id=run_id, message=reports.run_report(conn, run, intent, workflow))
                log.info("run.succeeded", run_id=run_id)
                return run.state
            position = workflow.steps.index(step)
            record = steps.start(conn, run_id=run_id, name=step.name, position=position)
            link(conn, step_node(step_key(run_id, step.name)), ("run", run_id), "part_of")
            audit.append(conn, actor="worker", at=services.now(), kind="step.started", intent_id=intent.id,
                         run_id=run_id,
                         payload={"step": step.name, "attempt": record.attempts})
        results = {name: r.result or {} for name, r in records.items() if r.state is StepState.SUCCEEDED}
        context = StepContext(services=services, run=run, intent=intent, step=step.name, results=results)
        log.info("step.start", run_id=run_id, step=step.name, attempt=record.attempts)
        try:
            result = step.run(context)
        except AwaitingApproval as wait:
            return _await_approval(services, run_id, step.name, wait)
        except ConnectorUnavailable as error:
            return _hold(services, run_id, step.name, error)
        except Exception as error:
            log.exception("step.failed", run_id=run_id, step=step.name)
            return _fail(services, run_id, step.name, error)
        with pool.connection() as conn, conn.transaction():
            steps.finish(conn, run_id=run_id, name=step.name, state=StepState.SUCCEEDED, result=result)
            audit.append(conn, actor="worker", at=services.now(), kind="step.succeeded", intent_id=intent.id,
                         run_id=run_id,
                         payload={"step": step.name})


def _await_approval(services: Services, run_id: int, step: str, wait: AwaitingApproval) -> RunState:
    with services.stores.pool.connection() as conn, conn.transaction():
        run = runs.get(conn, run_id, for_update=True)
        intent = intents.get(conn, run.intent_id)
        steps.finish(conn, run_id=run_id, name=step, state=StepState.WAITING)
        audit.append(conn, actor="worker", at=services.now(), kind="step.waiting", intent_id=intent.id, run_id=run_id,
                     payload={"step": step})
        asked = ask_approval(
            conn, run_id=run_id, intent_id=intent.id, step=step, digest=wait.digest, ask=wait.ask,
            ttl=services.settings.approval_ttl, now=services.now(),
        )
        approval = asked.approval
        if asked.new:
            outbox.post(conn, channel=intent.channel, conversation=intent.conversation, intent_id=intent.id,
                        run_id=run_id, message=words.approval_request(approval, intent))
        if run.state is RunState.RUNNING:
            run = move_run(conn, run_id, RunEvent.AWAIT_APPROVAL, actor="policy", now=services.now(),
                                  reason="waiting for approval", payload={"approval": approval.id, "step": step})
    log.info("run.awaiting_approval", run_id=run_id, approval=approval.id)
    return run.state


def _hold(services: Services, run_id: int, step: str, error: ConnectorUnavailable) -> RunState:
    """An outside system is down after its retries: pause the run, keep its work, tell the operator."""
    with services.stores.pool.connection() as conn, conn.transaction():
        steps.finish(conn, run_id=run_id, name=step, state=StepState.FAILED, error=str(error))
        run = runs.get(conn, run_id, for_update=True)
        audit.append(conn, actor="worker", at=services.now(), kind="step.failed", intent_id=run.intent_id,
                     run_id=run_id,
                     payload={"step": step, "error": str(error)[:500], "held": True})
        # The operator may have paused or cancelled the run while the step ran: their word stands.
        if run.state is RunState.RUNNING:
            run = move_run(conn, run_id, RunEvent.PAUSE, actor="worker", now=services.now(),
                                  reason=f"{step}: {error} — resume when it is back")
        intent = intents.get(conn, run.intent_id)
        outbox.post(conn, channel=intent.channel, conversation=intent.conversation, intent_id=intent.id,
                    run_id=run_id, message=words.run_failed(run, str(error), []))
    return run.state


def _fail(services: Services, run_id: int, step_name: str, error: Exception) -> RunState:
    """Undo what can be undone, newest first, then record the run as failed or compensated.

    The failed step is compensated too: it may have acted on some items before it broke, and
    compensations work from idempotency keys, so undoing what never happened is a no-op. A
    compensation that itself fails is recorded and the others still run: stopping half-way would
    leave the run neither live nor finished.
    """
    pool = services.stores.pool
    with pool.connection() as conn, conn.transaction():
        steps.finish(conn, run_id=run_id, name=step_name, state=StepState.FAILED,
                     error=f"{type(error).__name__}: {error}")
        run = runs.get(conn, run_id)
        intent = intents.get(conn, run.intent_id)
        audit.append(conn, actor="worker", at=services.now(), kind="step.failed", intent_id=intent.id, run_id=run_id,
                     payload={"step": step_name, "error": f"{type(error).__name__}: {error}"[:500]})
        records = steps.records(conn, run_id)
    workflow = WORKFLOWS[run.workflow]
    undone: list[str] = []
    results = {name: r.result or {} for name, r in records.items() if r.state is StepState.SUCCEEDED}
    for step in reversed(workflow.steps):
        record = records.get(step.name)
        if step.compensate is None or record is None:
            continue
        if record.state is not StepState.SUCCEEDED and step.name != step_name:
            continue
        context = StepContext(services=services, run=run, intent=intent, step=step.name, results=results)
        try:
            outcome = step.compensate(context, record.result or {})
        except Exception as broken:
            log.exception("step.compensation_failed", run_id=run_id, step=step.name)
            with pool.connection() as conn, conn.transaction():
                audit.append(conn, actor="worker", at=services.now(), kind="step.compensation_failed",
                             intent_id=intent.id,
                             run_id=run_id, payload={"step": step.name, "error": str(broken)})
            undone.append(f"{step.name}: compensation FAILED ({broken}) — check it by hand")
            continue
        with pool.connection() as conn, conn.transaction():
            if step.name != step_name:
                steps.finish(conn, run_id=run_id, name=step.name, state=StepState.COMPENSATED, result=record.result)
            audit.append(conn, actor="worker", at=services.now(), kind="step.compensated", intent_id=intent.id,
                         run_id=run_id,
                         payload={"step": step.name, "result": outcome})
        undone.append(f"{step.name}: {outcome}")
    with pool.connection() as conn, conn.transaction():
        run = runs.get(conn, run_id, for_update=True)
        if run.state is RunState.RUNNING:
            event = RunEvent.COMPENSATE if undone else RunEvent.FAIL
            run = move_run(conn, run_id, event, actor="worker", now=services.now(),
                           reason=f"{step_name} failed: {error}")
        outbox.post(conn, channel=intent.channel, conversation=intent.conversation, intent_id=intent.id,
                    run_id=run_id, message=words.run_failed(run, f"{step_name} failed: {error}", undone))
    return run.state
