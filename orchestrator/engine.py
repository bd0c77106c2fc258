"""The engine: `advance(run)` moves a run through its workflow's steps until it finishes or must wait.

Plain synchronous code, run inside an RQ job. Only one process advances a run at a time: a session
advisory lock on the run id, held on a connection of its own, is released by PostgreSQL the moment
that connection dies, so a worker killed mid-step leaves the run free for the next one. Because that
session can also end under a live worker, the lock is the run's fence (`ownership.RunLock`): checked
before every outside action, before every step and before every write that follows a step; once it is
lost the worker stops and touches nothing (`OwnershipLost`), since the run is another worker's now. A check
made on the lock's connection cannot cover a write on a pool connection, so every transaction below begins
with `lock.own_row`: the run's row names the newest hold, and a worker whose run was taken over between its
check and its write rolls back, committing nothing.
"""
from __future__ import annotations

import time
from typing import Any

import structlog

from connectors import ActionInProgress, ClaimTakenOver, ConnectorUnavailable, fenced
from memory import link, step_node
from orchestrator import audit, intents, outbox, runs, steps, words
from orchestrator.approvals import AwaitingApproval
from orchestrator.errors import STORES_UNAVAILABLE, OwnershipLost
from orchestrator.keys import step_key
from orchestrator.ownership import RunLock, hold_run
from orchestrator.runs import RunEvent, RunState
from orchestrator.services import Services
from orchestrator.steps import StepState
from orchestrator.transitions import ask_approval, move_run
from orchestrator.views import reports
from orchestrator.workflows import WORKFLOWS
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.model import Step, next_step

log = structlog.get_logger(__name__)

# Our own stores failing under a step: retried later by recovery, never a reason to compensate.
INFRASTRUCTURE = STORES_UNAVAILABLE

# An outside action another attempt still holds (see `idempotency.CLAIM`) is waited for in the worker when its
# claim ends this soon; a longer wait would only idle the worker, so the run is left `running` and recovery
# takes it up again once the claim has run out.
WAIT_IN_WORKER_SECONDS = 30.0


def advance(services: Services, run_id: int) -> RunState:
    """Run the run's next steps. Returns the state it stopped in; does nothing if another worker holds it.

    When the run's lock is lost on the way (its session ended), it stops at once and returns RUNNING: the
    run is left exactly as it is, for whichever worker holds it now.
    """
    with hold_run(services.stores.database_url, run_id) as lock:
        if lock is None:
            log.info("run.busy", run_id=run_id)
            with services.stores.pool.connection() as conn:
                return runs.get(conn, run_id).state
        try:
            # Every connector claim and model call made while advancing checks this run's lock first.
            with fenced(lock):
                return _advance_locked(services, lock)
        except OwnershipLost as lost:
            log.warning("run.ownership_lost", run_id=run_id, why=lost.why)
            return RunState.RUNNING


def _advance_locked(services: Services, lock: RunLock) -> RunState:
    pool, run_id = services.stores.pool, lock.run_id
    while True:
        lock.check()
        with pool.connection() as conn, conn.transaction():
            lock.own_row(conn)
            run = runs.get(conn, run_id, for_update=True)
            if run.state is RunState.QUEUED:
                run = move_run(conn, run_id, RunEvent.START, actor="worker", now=services.now())
            if run.state is RunState.COMPENSATING:
                step = None
            elif run.state is not RunState.RUNNING:
                return run.state
            else:
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
                             run_id=run_id, payload={"step": step.name, "attempt": record.attempts})
        if step is None:
            # A worker died (or met an outage) half-way through undoing: finish the undoing, never run forward.
            return _unwind(services, lock)
        results = {name: r.result or {} for name, r in records.items() if r.state is StepState.SUCCEEDED}
        context = StepContext(services=services, run=run, intent=intent, step=step.name, results=results,
                              own_row=lock.own_row)
        log.info("step.start", run_id=run_id, step=step.name, attempt=record.attempts)
        try:
            result = step.run(context)
        except OwnershipLost:
            raise
        except ClaimTakenOver as taken:
            # The step acted, then found its action's claim another hold's: that hold has the run now.
            raise OwnershipLost(run_id, str(taken)) from taken
        except AwaitingApproval as wait:
            lock.check()
            return _await_approval(services, lock, step.name, wait)
        except ActionInProgress as busy:
            # Another attempt (a worker that lost this run, or died) holds one of the step's actions: nothing
            # failed, and acting now could do that action twice. Wait for its claim to run out, or leave the run.
            log.info("step.action_in_progress", run_id=run_id, step=step.name, key=busy.key,
                     retry_after=busy.retry_after)
            if busy.retry_after > WAIT_IN_WORKER_SECONDS:
                return RunState.RUNNING
            # A hair past the end: the claim is taken over only once the database's clock is beyond it.
            time.sleep(busy.retry_after + 0.1)
            continue
        except ConnectorUnavailable as error:
            lock.check()
            return _hold(services, lock, step.name, error)
        except INFRASTRUCTURE as error:
            # Our own database or Redis went away mid-step (a restart, a failover, a full pool): nothing says the
            # step is wrong, so nothing is undone. The run stays running; recovery re-enqueues it once no worker
            # holds it, and its actions' keys make the re-run repeat nothing.
            log.warning("step.infrastructure_unavailable", run_id=run_id, step=step.name, error=str(error))
            return RunState.RUNNING
        except Exception as error:
            # A run no longer ours is not failed by us: its new worker decides (the error may be the loss itself).
            lock.check()
            log.exception("step.failed", run_id=run_id, step=step.name)
            return _fail(services, lock, step.name, error)
        lock.check()
        with pool.connection() as conn, conn.transaction():
            lock.own_row(conn)
            steps.finish(conn, run_id=run_id, name=step.name, state=StepState.SUCCEEDED, result=result)
            audit.append(conn, actor="worker", at=services.now(), kind="step.succeeded", intent_id=intent.id,
                         run_id=run_id,
                         payload={"step": step.name})


def _await_approval(services: Services, lock: RunLock, step: str, wait: AwaitingApproval) -> RunState:
    run_id = lock.run_id
    with services.stores.pool.connection() as conn, conn.transaction():
        lock.own_row(conn)
        run = runs.get(conn, run_id, for_update=True)
        intent = intents.get(conn, run.intent_id)
        steps.finish(conn, run_id=run_id, name=step, state=StepState.WAITING)
        audit.append(conn, actor="worker", at=services.now(), kind="step.waiting", intent_id=intent.id, run_id=run_id,
                     payload={"step": step})
        asked = ask_approval(
            conn, run_id=run_id, intent_id=intent.id, step=step, digest=wait.digest, ask=wait.ask,
            ttl=wait.ttl or services.settings.approval_ttl, now=services.now(),
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


def _hold(services: Services, lock: RunLock, step: str, error: ConnectorUnavailable) -> RunState:
    """An outside system is down after its retries: pause the run, keep its work, tell the operator."""
    run_id = lock.run_id
    with services.stores.pool.connection() as conn, conn.transaction():
        lock.own_row(conn)
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


def _fail(services: Services, lock: RunLock, step_name: str, error: Exception) -> RunState:
    """Record the step failed and the run compensating (one transaction), then undo what can be undone.

    From the moment this commits the run is `compensating`: a worker killed while undoing leaves it there,
    and the next one finishes the undoing (`_unwind`) instead of running the failed step forward. The
    operator's word while the step ran stands: a cancelled run is undone and stays cancelled; a paused one
    is left as it is, undone nothing, since resuming it runs the failed step again (its keys repeat nothing)
    and undoing first would have that re-run report success over the refunds.
    """
    detail, run_id = f"{type(error).__name__}: {error}", lock.run_id
    with services.stores.pool.connection() as conn, conn.transaction():
        lock.own_row(conn)
        steps.finish(conn, run_id=run_id, name=step_name, state=StepState.FAILED, error=detail)
        run = runs.get(conn, run_id, for_update=True)
        audit.append(conn, actor="worker", at=services.now(), kind="step.failed", intent_id=run.intent_id,
                     run_id=run_id, payload={"step": step_name, "error": detail[:500]})
        if run.state is RunState.RUNNING:
            move_run(conn, run_id, RunEvent.UNWIND, actor="worker", now=services.now(),
                     reason=f"{step_name} failed: {error}")
    if run.state is RunState.PAUSED:
        with services.stores.pool.connection() as conn, conn.transaction():
            lock.own_row(conn)
            intent = intents.get(conn, run.intent_id)
            outbox.post(conn, channel=intent.channel, conversation=intent.conversation, intent_id=intent.id,
                        run_id=run_id, message=words.run_failed(run, f"{step_name} failed: {error}", []))
        return run.state
    return _unwind(services, lock)


class _LeftForRecovery(Exception):
    """An undoing waits on another attempt's claim longer than a worker waits: recovery finishes the run later."""


def _compensate_when_free(step: Step, context: StepContext, result: dict[str, Any], run_id: int) -> dict[str, Any]:
    """The step's compensation, waiting out a short claim of another attempt (a worker that lost this run, or
    died, still holds the action or its undoing): undoing now could refund twice, or miss a charge still landing."""
    assert step.compensate is not None
    while True:
        try:
            return step.compensate(context, result)
        except ActionInProgress as busy:
            log.info("step.compensation_waits", run_id=run_id, step=step.name, key=busy.key,
                     retry_after=busy.retry_after)
            if busy.retry_after > WAIT_IN_WORKER_SECONDS:
                raise _LeftForRecovery from busy
            time.sleep(busy.retry_after + 0.1)


def _unwind(services: Services, lock: RunLock) -> RunState:
    """Undo what can be undone, newest first, then record the run as compensated or failed.

    The failed step is compensated too: it may have acted on some items before it broke, and
    compensations work from idempotency keys, so undoing what never happened (or what an earlier,
    killed attempt already undid) is a no-op. A compensation that itself fails is recorded and the
    others still run: stopping half-way would leave the run neither live nor finished. An outage of
    PostgreSQL or Redis is different: it says nothing about the compensation, so the run stays
    compensating and recovery tries again; so is the loss of the run's lock, which stops the undoing
    where it is for the run's new worker to finish.
    """
    pool, run_id = services.stores.pool, lock.run_id
    with pool.connection() as conn:
        run = runs.get(conn, run_id)
        intent = intents.get(conn, run.intent_id)
        records = steps.records(conn, run_id)
    failed = next((name for name, record in records.items() if record.state is StepState.FAILED), "")
    # The UNWIND transition kept why; a run the operator cancelled or paused meanwhile keeps their reason instead.
    error = (records[failed].error or "").split(": ", 1)[-1] if failed else ""
    reason = run.reason if run.state is RunState.COMPENSATING else f"{failed} failed: {error}"
    workflow = WORKFLOWS[run.workflow]
    # Steps an earlier, interrupted attempt already undid count as undone: the run was compensated all the same.
    undone = [f"{name}: undone before a restart" for name, r in reversed(records.items())
              if r.state is StepState.COMPENSATED]
    results = {name: r.result or {} for name, r in records.items() if r.state is StepState.SUCCEEDED}
    for step in reversed(workflow.steps):
        record = records.get(step.name)
        if step.compensate is None or record is None:
            continue
        if record.state not in (StepState.SUCCEEDED, StepState.FAILED):
            continue  # never ran, or already undone by an earlier attempt of this unwinding
        context = StepContext(services=services, run=run, intent=intent, step=step.name, results=results,
                              own_row=lock.own_row)
        try:
            outcome = _compensate_when_free(step, context, record.result or {}, run_id)
        except _LeftForRecovery:
            return RunState.COMPENSATING
        except ClaimTakenOver as taken:
            raise OwnershipLost(run_id, str(taken)) from taken
        except (OwnershipLost, *INFRASTRUCTURE):
            raise
        except Exception as broken:
            lock.check()
            log.exception("step.compensation_failed", run_id=run_id, step=step.name)
            with pool.connection() as conn, conn.transaction():
                lock.own_row(conn)
                audit.append(conn, actor="worker", at=services.now(), kind="step.compensation_failed",
                             intent_id=intent.id, run_id=run_id, payload={"step": step.name, "error": str(broken)})
            undone.append(f"{step.name}: compensation FAILED ({broken}) — check it by hand")
            continue
        lock.check()
        with pool.connection() as conn, conn.transaction():
            lock.own_row(conn)
            if record.state is StepState.SUCCEEDED:
                steps.finish(conn, run_id=run_id, name=step.name, state=StepState.COMPENSATED, result=record.result)
            audit.append(conn, actor="worker", at=services.now(), kind="step.compensated", intent_id=intent.id,
                         run_id=run_id, payload={"step": step.name, "result": outcome})
        undone.append(f"{step.name}: {outcome}")
    lock.check()
    with pool.connection() as conn, conn.transaction():
        lock.own_row(conn)
        run = runs.get(conn, run_id, for_update=True)
        if run.state is RunState.COMPENSATING:
            event = RunEvent.COMPENSATE if undone else RunEvent.FAIL
            run = move_run(conn, run_id, event, actor="worker", now=services.now(), reason=reason)
        outbox.post(conn, channel=intent.channel, conversation=intent.conversation, intent_id=intent.id,
                    run_id=run_id, message=words.run_failed(run, reason, undone))
    return run.state
