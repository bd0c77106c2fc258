"""Replay: a run rebuilt from its audit events alone agrees with the tables, and says where it does not."""
import json
from datetime import UTC, datetime, timedelta

import psycopg

from orchestrator import Decision, MessageKind, agent_calls, anchors, audit, replay, words
from orchestrator.audit import AuditEvent
from orchestrator.chat import control
from orchestrator.chat.commands import Command, parse
from orchestrator.runs import RunState
from orchestrator.steps import StepState
from tests.orchestrator.helpers import (
    OPERATOR,
    STRANGER,
    WINBACK,
    approve_and_finish,
    break_winback_at_the_end,
    operations,
    pending_approval,
    run_state,
    seed,
    to_approval,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _event(n: int, kind: str, payload: dict | None = None, *, actor: str = "worker", run_id: int = 7) -> AuditEvent:
    # The pure fold reads no hashes; the chain is `check`'s business.
    return AuditEvent(id=n, at=T0 + timedelta(seconds=n), actor=actor, kind=kind, intent_id=1, run_id=run_id,
                      payload=payload or {}, prev_hash="-", hash="-")


def _move(n: int, event: str, from_: str, to: str, **extra) -> AuditEvent:
    return _event(n, f"run.{event}", {"from": from_, "to": to, "reason": "", **extra})


def _tables(db, run_id: int) -> dict:
    with db.connection() as conn:
        return {
            "run": conn.execute("SELECT * FROM runs WHERE id = %s", (run_id,)).fetchone(),
            "steps": conn.execute("SELECT name, state, attempts FROM steps WHERE run_id = %s ORDER BY position",
                                  (run_id,)).fetchall(),
            "approvals": conn.execute("SELECT id, state, decided_by, decided_via FROM approvals WHERE run_id = %s"
                                      " ORDER BY requested_at", (run_id,)).fetchall(),
            "calls": agent_calls.for_run(conn, run_id),
        }


def _as_superuser_without_triggers(database_url: str, sql: str) -> None:
    # What someone with superuser rights could do: switch the append-only triggers off and edit history.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql)


# -- the pure fold ------------------------------------------------------------------------------------

def test_an_event_the_state_machine_refuses_is_flagged_and_not_applied():
    """A `run.approve` after the run succeeded is impossible: it is flagged with both names, the replay stays put."""
    events = [
        _event(1, "run.created", {"workflow": "winback", "state": "queued"}, actor="console:operator"),
        _move(2, "start", "queued", "running"),
        _move(3, "succeed", "running", "succeeded"),
        _move(4, "approve", "succeeded", "running"),
    ]
    replayed = replay.fold(events, run_id=7)
    assert replayed.state is RunState.SUCCEEDED and replayed.finished
    assert [(f.event_id, f.kind) for f in replayed.flags] == [(4, "run.approve")]
    assert "refuses" in replayed.flags[0].problem and "succeeded cannot approve" in replayed.flags[0].problem
    assert [m.state for m in replayed.timeline] == [RunState.QUEUED, RunState.RUNNING, RunState.SUCCEEDED,
                                                    RunState.SUCCEEDED]


def test_a_recorded_to_the_state_machine_does_not_give_is_flagged():
    """Resuming returns to the state the run was paused from; a log that says otherwise is caught."""
    events = [
        _event(1, "run.created", {"workflow": "winback", "state": "queued"}),
        _move(2, "start", "queued", "running"),
        _move(3, "await_approval", "running", "awaiting_approval", step="send_emails", approval="a0000000001"),
        _move(4, "pause", "awaiting_approval", "paused"),
        _move(5, "resume", "paused", "running"),
    ]
    replayed = replay.fold(events, run_id=7)
    assert replayed.state is RunState.AWAITING_APPROVAL and replayed.paused_from is None
    assert [f.event_id for f in replayed.flags] == [5]
    assert "moved to running" in replayed.flags[0].problem and "awaiting_approval" in replayed.flags[0].problem


def test_a_second_decision_on_one_approval_is_flagged():
    """An approval is decided once; a log that decides it twice is not what `approvals.decide` writes."""
    events = [
        _event(1, "run.created", {"workflow": "winback", "state": "queued"}),
        _event(2, "approval.requested", {"approval": "a0000000001", "step": "send_emails", "digest": "d"}),
        _event(3, "approval.approved", {"approval": "a0000000001", "via": "slack"}, actor="slack:U1"),
        _event(4, "approval.rejected", {"approval": "a0000000001", "via": "telegram"}, actor="telegram:2"),
    ]
    replayed = replay.fold(events, run_id=7)
    assert [f.event_id for f in replayed.flags] == [4]
    assert replayed.approvals[0].decided_by == "telegram:2"


def test_a_chat_reply_keeps_the_latest_events_and_says_how_many_it_left_out():
    """A long run's chat reply stays short: the last CHAT_TIMELINE events, and where to read the rest."""
    events = [_event(1, "run.created", {"workflow": "winback", "state": "queued"}),
              _move(2, "start", "queued", "running")]
    events += [_event(n, "payment.attempt_failed", {"customer": "c-eve", "attempt": n}) for n in range(3, 41)]
    report = replay.ReplayReport(replay=replay.fold(events, run_id=7), disagreements=[],
                                 chain=anchors.AnchorReport(ok=True, checked=40), chain_holds=True)
    lines = next(s for s in words.replay_verdict(report, timeline_limit=control.CHAT_TIMELINE).sections
                 if s.title.startswith("Timeline")).text.splitlines()
    assert len(lines) == control.CHAT_TIMELINE + 1
    assert lines[0].startswith("… 10 earlier events") and "opsos replay 7" in lines[0]
    assert "attempt 40" in lines[-1]


def test_the_fold_is_deterministic(services, db, work):
    """Same events, same replay: folding a real run's events twice, or in another order, gives equal results."""
    seed(services)
    approve_and_finish(services, work)
    with db.connection() as conn:
        events = audit.events(conn, run_id=1)
    first, second = replay.fold(events, run_id=1), replay.fold(events, run_id=1)
    shuffled = replay.fold(list(reversed(events)), run_id=1)
    assert first == second == shuffled
    assert first.model_dump_json() == second.model_dump_json() == shuffled.model_dump_json()


# -- replay against the tables ------------------------------------------------------------------------

def test_a_full_winback_run_replays_to_exactly_the_tables_state(services, db, work):
    """Submit, work, approve, work to success (a declined card on the way): the log alone rebuilds every row."""
    seed(services, declining="c-eve")
    approve_and_finish(services, work)
    assert run_state(db, 1) == "succeeded"
    report = replay.snapshot(db, 1, anchors=anchors.book(services.settings))
    assert report.disagreements == [] and report.replay.flags == []
    assert report.chain.ok and report.chain_holds and report.agrees

    rebuilt, tables = report.replay, _tables(db, 1)
    assert rebuilt.state is RunState.SUCCEEDED and rebuilt.finished and rebuilt.paused_from is None
    assert (rebuilt.workflow, rebuilt.reason) == (tables["run"]["workflow"], tables["run"]["reason"])
    assert [(s.name, s.state.value, s.attempts) for s in rebuilt.steps] == [
        (r["name"], r["state"], r["attempts"]) for r in tables["steps"]]
    assert all(s.state is StepState.SUCCEEDED for s in rebuilt.steps)
    assert [(a.id, a.state.value, a.decided_by, a.decided_via) for a in rebuilt.approvals] == [
        (r["id"], r["state"], r["decided_by"], r["decided_via"]) for r in tables["approvals"]]
    assert rebuilt.approvals[0].decided_by == OPERATOR.identity
    assert [(c.id, c.step, c.tier, c.model, c.tokens) for c in rebuilt.calls] == [
        (c.id, c.step, c.tier, c.model, c.input_tokens + c.output_tokens) for c in tables["calls"]]
    assert abs(rebuilt.cost_usd - sum(float(c.cost_usd) for c in tables["calls"])) < 1e-6
    kinds = [m.kind for m in rebuilt.timeline]
    assert kinds[0] == "run.created" and kinds[-1] == "run.succeed" and "payment.attempt_failed" in kinds


def test_a_paused_then_resumed_run_replays_right(services, db, work):
    """Paused while queued, resumed, paused again at its approval (paused_from kept), resumed, approved, finished."""
    seed(services, declining=None)
    ops = operations(services)
    ops.submit(OPERATOR, WINBACK)
    ops.handle_text(OPERATOR, "pause 1")
    work()
    assert replay.snapshot(db, 1, anchors=anchors.book(services.settings)).agrees
    ops.handle_text(OPERATOR, "resume 1")
    work()
    ops.handle_text(OPERATOR, "pause 1")
    paused = replay.snapshot(db, 1, anchors=anchors.book(services.settings))
    assert paused.agrees, paused.disagreements
    assert (paused.replay.state, paused.replay.paused_from) == (RunState.PAUSED, RunState.AWAITING_APPROVAL)
    ops.handle_text(OPERATOR, "resume 1")
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    report = replay.snapshot(db, 1, anchors=anchors.book(services.settings))
    assert run_state(db, 1) == "succeeded" and report.replay.state is RunState.SUCCEEDED
    assert report.agrees, (report.disagreements, report.replay.flags)
    moves = [m.kind for m in report.replay.timeline if m.kind.startswith("run.")]
    assert moves == ["run.created", "run.pause", "run.resume", "run.start", "run.await_approval", "run.pause",
                     "run.resume", "run.approve", "run.succeed"]


def test_a_cancelled_run_replays_right(services, db, work):
    """Cancelled at its approval: the run cancelled and finished, its step still waiting, the approval withdrawn."""
    seed(services)
    ops, _ = to_approval(services, work)
    ops.handle_text(OPERATOR, "cancel 1")
    report = replay.snapshot(db, 1, anchors=anchors.book(services.settings))
    assert report.agrees, (report.disagreements, report.replay.flags)
    assert report.replay.state is RunState.CANCELLED and report.replay.finished
    assert report.replay.steps[-1].state is StepState.WAITING
    assert [a.state.value for a in report.replay.approvals] == ["void"]


def test_a_run_whose_step_broke_replays_its_compensation(services, db, work, monkeypatch):
    """A step that breaks: the replay finds it failed (its step.failed event) and the earlier steps undone."""
    break_winback_at_the_end(monkeypatch)
    seed(services, declining=None)
    approve_and_finish(services, work)
    assert run_state(db, 1) == "compensated"
    report = replay.snapshot(db, 1, anchors=anchors.book(services.settings))
    assert report.agrees, (report.disagreements, report.replay.flags)
    states = {s.name: s.state for s in report.replay.steps}
    assert states["sync_crm"] is StepState.FAILED and StepState.COMPENSATED in states.values()
    assert "sync_crm failed" in report.replay.reason


# -- tampering ----------------------------------------------------------------------------------------

def test_a_run_row_changed_behind_the_logs_back_is_reported(services, db, work):
    """UPDATE runs directly (only audit_events is append-only): the report names the run and both states."""
    seed(services)
    approve_and_finish(services, work)
    with db.connection() as conn:
        conn.execute("UPDATE runs SET state = 'running' WHERE id = 1")
    report = replay.snapshot(db, 1, anchors=anchors.book(services.settings))
    assert not report.agrees and report.chain_holds
    assert [(d.subject, d.field, d.table, d.log) for d in report.disagreements] == [
        ("run #1", "state", "running", "succeeded")]
    text = control.replay_reply(services, 1).plain_text()
    assert "run #1 state: the table says running, the log says succeeded" in text


def test_an_approval_row_rewritten_to_another_decider_is_reported(services, db, work):
    """Who approved is in the log: an approvals row changed to another name, or a nonsense state, is caught."""
    seed(services)
    approve_and_finish(services, work)
    with db.connection() as conn:
        conn.execute("UPDATE approvals SET decided_by = 'slack:UMALLORY', state = 'whatever' WHERE run_id = 1")
    report = replay.snapshot(db, 1, anchors=anchors.book(services.settings))
    found = {(d.field, d.table, d.log) for d in report.disagreements}
    assert ("decided by", "slack:UMALLORY", OPERATOR.identity) in found
    assert ("state", "whatever", "approved") in found


def test_an_altered_audit_event_breaks_the_replays_chain(services, db, work, database_url):
    """History edited with the triggers off: the chain check names the event, and the replay no longer agrees."""
    seed(services)
    approve_and_finish(services, work)
    with db.connection() as conn:
        target = next(e.id for e in audit.events(conn, run_id=1) if e.kind == "approval.approved")
    _as_superuser_without_triggers(
        database_url, f"UPDATE audit_events SET actor = 'slack:UMALLORY' WHERE id = {target}")
    report = replay.snapshot(db, 1, anchors=anchors.book(services.settings))
    assert not report.chain_holds and report.chain.first_broken_id == target and not report.agrees
    assert f"BROKEN at event {target}" in control.replay_reply(services, 1).plain_text()


# -- the front doors ----------------------------------------------------------------------------------

async def test_the_dashboards_run_page_shows_the_verdict(services, db, work):
    """The run page says the replay agrees, and lists the disagreement once the run row is changed behind its back."""
    import re

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from bot.dashboard import add_dashboard
    from orchestrator.views import overview

    seed(services)
    ops = approve_and_finish(services, work)
    with db.connection() as conn:
        assert overview.run_page(conn, 1, anchors=anchors.book(services.settings)).verdict.agrees
    app = web.Application()
    add_dashboard(app, ops)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        link = re.search(r"https?://[^/\s]+(/login/[\w-]+)", ops.handle_text(OPERATOR, "dashboard").text).group(1)
        assert (await client.post(link, allow_redirects=False)).status == 303
        assert "replay agrees with the tables" in " ".join((await (await client.get("/runs/1")).text()).split())
        with db.connection() as conn:
            conn.execute("UPDATE runs SET state = 'running' WHERE id = 1")
        page = await (await client.get("/runs/1")).text()
        assert re.search(r"run #1 state</td><td class=\"bad\">running</td><td>succeeded", page)
    finally:
        await client.close()


def test_replay_in_chat_answers_with_the_verdict_and_the_timeline(services, db, work):
    """`replay 1` is a command (listed in help); a stranger is refused; `replay 99` and prose are not replays."""
    seed(services)
    ops = approve_and_finish(services, work)
    reply = ops.handle_text(OPERATOR, "replay 1")
    assert reply.kind is MessageKind.REPORT and reply.run_id == 1
    assert reply.title == "Replay of run #1: replay agrees with the tables"
    timeline = next(s for s in reply.sections if s.title.startswith("Timeline"))
    lines = timeline.text.splitlines()
    assert len(lines) <= control.CHAT_TIMELINE + 1 and "run.succeed" in lines[-1] and lines[-1].endswith("succeeded")
    assert "replay <run>" in ops.handle_text(OPERATOR, "help").plain_text()
    assert ops.handle_text(STRANGER, "replay 1").kind is MessageKind.REFUSAL
    assert "there is no run #99" in ops.handle_text(OPERATOR, "replay #99").title
    assert parse("replay the spring campaign").command is Command.REQUEST


def test_opsos_replay_prints_the_timeline_and_the_verdict(services, db, work, database_url, redis_url, monkeypatch,
                                                          capsys):
    """The CLI prints every event with its time, actor and the state after, then the verdict; exit 1 on tampering."""
    from bot.cli import main

    seed(services)
    approve_and_finish(services, work)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OPSOS_DATA_DIR", str(services.settings.data_dir))
    capsys.readouterr()  # the worker's log lines so far
    assert main(["replay", "1"]) == 0
    out = capsys.readouterr().out
    assert "Replay of run #1: replay agrees with the tables" in out
    with db.connection() as conn:
        events = audit.events(conn, run_id=1)
    timeline = [line.split() for line in out.splitlines() if line.startswith(f"{events[0].at.year}-")]
    assert len(timeline) == len(events)
    first, last = timeline[0], timeline[-1]
    assert first[:6] == [*f"{events[0].at.astimezone(UTC):%Y-%m-%d %H:%M:%S}".split(), OPERATOR.identity,
                         "run.created", "→", "queued"]
    assert last[2:6] == ["worker", "run.succeed", "→", "succeeded"]
    assert [line[3] for line in timeline] == [e.kind for e in events]

    assert main(["replay", "1", "--json"]) == 0
    dumped = json.loads(capsys.readouterr().out)
    assert dumped["agrees"] and dumped["replay"]["state"] == "succeeded"
    assert len(dumped["replay"]["timeline"]) == len(events)

    with db.connection() as conn:
        conn.execute("UPDATE runs SET state = 'running' WHERE id = 1")
    assert main(["replay", "1"]) == 1
    assert "run #1 state: the table says running, the log says succeeded" in capsys.readouterr().out
    assert main(["replay", "99"]) == 1
    assert "no run 99" in capsys.readouterr().out
