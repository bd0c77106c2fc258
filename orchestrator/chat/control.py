"""Run control in chat: status, pause / resume / cancel, and `replay N`; the operator's word over a run."""
from __future__ import annotations

from orchestrator import anchors, intents, replay, runs, words
from orchestrator.chat.requester import Requester, refuse
from orchestrator.errors import InvalidTransition, NotFound
from orchestrator.messages import Message
from orchestrator.queue import enqueue_advance
from orchestrator.runs import RunEvent, RunState
from orchestrator.services import Services
from orchestrator.transitions import move_run
from orchestrator.views import reports
from orchestrator.workflows import WORKFLOWS

# A chat reply shows the latest events of a replayed run; `opsos replay N` prints them all.
CHAT_TIMELINE = 30


def status(services: Services, run_id: int | None = None) -> Message:
    with services.stores.pool.connection() as conn:
        if run_id is None:
            return reports.status(conn, now=services.now(),
                                  budget_daily_usd=services.settings.budget_daily_usd)
        try:
            run = runs.get(conn, run_id)
        except NotFound:
            return words.invalid_request(f"there is no run #{run_id}")
        intent = intents.get(conn, run.intent_id)
        return reports.run_detail(conn, run, intent, WORKFLOWS[run.workflow])


def change_run(services: Services, who: Requester, run_id: int, event: RunEvent) -> Message:
    """Pause, resume or cancel a run for the operator. Resuming a run whose approval expired asks again."""
    if not services.policy.is_operator(who.identity):
        return refuse(services, who, event.value, {"run": run_id})
    try:
        with services.stores.pool.connection() as conn, conn.transaction():
            run = runs.get(conn, run_id, for_update=True)
            if event is RunEvent.RESUME and run.state is RunState.AWAITING_APPROVAL:
                # Nothing to resume but an expired approval: let the run ask again.
                run = move_run(conn, run_id, RunEvent.PAUSE, actor=who.identity, now=services.now())
            run = move_run(conn, run_id, event, actor=who.identity, now=services.now(), payload={"via": who.channel})
            if event is RunEvent.RESUME and run.state is RunState.AWAITING_APPROVAL:
                run = move_run(conn, run_id, RunEvent.APPROVE, actor=who.identity, now=services.now(),
                                      reason="asking again")
    except NotFound:
        return words.invalid_request(f"there is no run #{run_id}")
    except InvalidTransition as error:
        return words.invalid_request(str(error))
    if run.state in (RunState.QUEUED, RunState.RUNNING):
        enqueue_advance(services.stores.redis, run_id, queue_name="interactive")
    return words.run_changed(run, {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[event.value],
                             who.identity)


def replay_reply(services: Services, run_id: int) -> Message:
    """`replay 3` in chat: the verdict and the latest events, or a refusal when there is no such run."""
    try:
        book = anchors.book(services.settings)
        report = replay.snapshot(services.stores.pool, run_id, anchors=book)
    except NotFound:
        return words.invalid_request(f"there is no run #{run_id}")
    return words.replay_verdict(report, timeline_limit=CHAT_TIMELINE)
