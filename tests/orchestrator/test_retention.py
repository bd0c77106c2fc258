"""Retention against the real PostgreSQL: what is older than the age goes, what is newer or still needed stays."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg.types.json import Jsonb

from orchestrator import anchors, audit, replay, retention, scheduler
from tests.orchestrator.helpers import approve_and_finish, count, seed

NOW = datetime(2026, 9, 1, 4, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=120)  # past the default 90 days
YOUNG = NOW - timedelta(days=10)
MESSAGE = Jsonb({"kind": "notice", "title": "hello"})


def _run(conn, state: str) -> int:
    """An intent and its run in `state`, as the tables hold them."""
    intent = conn.execute(
        "INSERT INTO intents (requested_by, channel, conversation, request, kind, budget_usd, deadline)"
        " VALUES ('console:operator', 'console', 'console:test', 'x', 'winback', 5, %s) RETURNING id",
        (NOW + timedelta(days=1),)).fetchone()["id"]
    return conn.execute("INSERT INTO runs (intent_id, workflow, state) VALUES (%s, 'winback', %s) RETURNING id",
                        (intent, state)).fetchone()["id"]


def _intent_of(conn, run_id: int) -> int:
    return conn.execute("SELECT intent_id FROM runs WHERE id = %s", (run_id,)).fetchone()["intent_id"]


def _outbox(conn, *, at: datetime, state: str = "delivered", run_id: int | None = None, intent_id: int | None = None,
            buttons: list[str] | None = None, edit_of: int | None = None, dedupe_key: str | None = None) -> int:
    return conn.execute(
        "INSERT INTO outbox (created_at, channel, conversation, run_id, intent_id, kind, message, state, edit_of,"
        " approval_buttons, dedupe_key) VALUES (%s, 'console', 'console:test', %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (at, run_id, intent_id, "edit" if edit_of else "notice", MESSAGE, state, edit_of, buttons or [],
         dedupe_key)).fetchone()["id"]


def _approval(conn, run_id: int, state: str) -> str:
    approval = f"a{run_id:010x}"
    conn.execute("INSERT INTO approvals (id, run_id, step, action_digest, request, state, requested_at, expires_at)"
                 " VALUES (%s, %s, 'send', 'd', '{}', %s, %s, %s)", (approval, run_id, state, OLD, OLD))
    return approval


def _action(conn, key: str, *, at: datetime, state: str = "done", owner: str | None = None) -> None:
    conn.execute("INSERT INTO connector_actions (key, connector, action, state, request, updated_at, created_at,"
                 " owner) VALUES (%s, 'email', 'send', %s, '{}', %s, %s, %s)", (key, state, at, at, owner))


def _budget_call(conn, *, at: datetime, run_id: int | None, state: str = "settled") -> int:
    return conn.execute(
        "INSERT INTO budget_calls (run_id, step, tier, model, state, estimate_usd, day, month, reserved_at,"
        " settled_at) VALUES (%s, 's', 'draft', 'm', %s, 0.01, %s, %s, %s, %s) RETURNING id",
        (run_id, state, at.date(), at.date().replace(day=1), at, at if state != "reserved" else None),
    ).fetchone()["id"]


def _slot(conn, job: str, at: datetime) -> None:
    conn.execute("INSERT INTO schedule_slots (job, slot, claimed_at, claimed_by) VALUES (%s, %s, %s, 'test')",
                 (job, at, at))


def _dashboard(conn, name: str, *, expired: datetime) -> None:
    conn.execute("INSERT INTO dashboard_sessions (id_hash, identity, csrf, created_at, expires_at)"
                 " VALUES (%s, 'console:operator', 'c', %s, %s)", (name, expired - timedelta(hours=12), expired))
    conn.execute("INSERT INTO dashboard_signins (token_hash, identity, created_at, expires_at)"
                 " VALUES (%s, 'console:operator', %s, %s)", (name, expired - timedelta(minutes=10), expired))


def _ids(db, table: str, column: str = "id") -> set:
    with db.connection() as conn:
        return {row[column] for row in conn.execute(f"SELECT {column} FROM {table}")}


def _prune(db, **options) -> retention.Pruned:
    with db.connection() as conn, conn.transaction():
        return retention.prune(conn, now=NOW, **{"older_than_days": 90, **options})


def test_rows_older_than_the_age_go_and_newer_rows_stay_in_every_table(db):
    """Of a finished run's rows, each table loses those older than 90 days and keeps the younger ones; the counts
    say so per table, and one `retention.pruned` event records them."""
    with db.connection() as conn, conn.transaction():
        done = _run(conn, "succeeded")
        old_out, young_out = _outbox(conn, at=OLD, run_id=done), _outbox(conn, at=YOUNG, run_id=done)
        dropped = _outbox(conn, at=OLD, state="dropped")
        _slot(conn, "digest", OLD - timedelta(days=1))
        _slot(conn, "digest", YOUNG)
        _dashboard(conn, "old", expired=OLD)
        _dashboard(conn, "young", expired=YOUNG)
        old_call, young_call = _budget_call(conn, at=OLD, run_id=done), _budget_call(conn, at=YOUNG, run_id=done)
        runless = _budget_call(conn, at=OLD, run_id=None, state="released")
        _action(conn, f"run:{done}:send:c-1", at=OLD)
        _action(conn, f"run:{done}:send:c-2", at=YOUNG, state="compensated")

    pruned = _prune(db)

    assert pruned.counts == {"outbox": 2, "schedule_slots": 1, "dashboard_sessions": 1, "dashboard_signins": 1,
                             "budget_calls": 2, "connector_actions": 1}
    assert _ids(db, "outbox") == {young_out} and old_out not in _ids(db, "outbox") and dropped not in _ids(db, "outbox")
    assert _ids(db, "schedule_slots", "slot") == {YOUNG}
    assert _ids(db, "dashboard_sessions", "id_hash") == _ids(db, "dashboard_signins", "token_hash") == {"young"}
    assert _ids(db, "budget_calls") == {young_call} and not {old_call, runless} & _ids(db, "budget_calls")
    assert _ids(db, "connector_actions", "key") == {f"run:{done}:send:c-2"}
    with db.connection() as conn:
        [event] = [e for e in audit.events(conn) if e.kind == "retention.pruned"]
    assert event.payload["counts"] == pruned.counts and event.actor == "retention"


def test_what_live_work_still_needs_stays_however_old(db):
    """Kept past the age: an outbox row of a live run (or of its intent), a copy still carrying a pending approval's
    buttons, a copy whose edit is still to go out (and that edit), an SLA alert of an intent still open, every
    connector key of an unfinished run, an action whose outcome is unknown, an open budget reservation and one of
    a live run, each job's latest slot (the one that stops a digest going out twice) and every audit event."""
    with db.connection() as conn, conn.transaction():
        live, done = _run(conn, "awaiting_approval"), _run(conn, "succeeded")
        live_intent = _intent_of(conn, live)
        keep_outbox = {
            _outbox(conn, at=OLD, run_id=live),
            _outbox(conn, at=OLD, intent_id=live_intent),
            _outbox(conn, at=OLD, buttons=[_approval(conn, done, "pending")]),
            _outbox(conn, at=OLD, dedupe_key=f"sla:{live_intent}:missed"),
            _outbox(conn, at=OLD, dedupe_key=f"budget:intent #{live_intent}:2026-05-01:80"),
        }
        copy = _outbox(conn, at=OLD)
        keep_outbox |= {copy, _outbox(conn, at=OLD, edit_of=copy, state="pending")}
        # The controls: the same, but of finished work, go.
        gone_outbox = {_outbox(conn, at=OLD, run_id=done), _outbox(conn, at=OLD, dedupe_key="sla:999:missed")}
        decided = _outbox(conn, at=OLD, buttons=[_approval(conn, _run(conn, "failed"), "approved")])
        gone_outbox |= {decided, _outbox(conn, at=OLD, edit_of=decided)}
        for key in (f"run:{live}:send:c-1", f"run:{live}:send:c-2"):
            _action(conn, key, at=OLD)
        # Pending with its owner: the worker died mid-action, the outcome is unknown. Pending with none: the
        # attempt raised and gave its claim back (a declined charge), the outcome known.
        _action(conn, f"run:{done}:send:c-3", at=OLD, state="pending", owner="a worker that died")
        _action(conn, f"run:{done}:send:c-4", at=OLD)
        _action(conn, f"run:{done}:send:c-5", at=OLD, state="pending")
        keep_calls = {_budget_call(conn, at=OLD, run_id=done, state="reserved"),
                      _budget_call(conn, at=OLD, run_id=None, state="reserved"),
                      _budget_call(conn, at=OLD, run_id=live)}
        _slot(conn, "digest", OLD)
        _slot(conn, "digest", OLD - timedelta(days=1))
        audit.append(conn, actor="test", kind="test.old", at=OLD, payload={})
    events = count(db, "audit_events")

    _prune(db)

    assert _ids(db, "outbox") & keep_outbox == keep_outbox and not _ids(db, "outbox") & gone_outbox
    assert _ids(db, "connector_actions", "key") == {f"run:{live}:send:c-1", f"run:{live}:send:c-2",
                                                    f"run:{done}:send:c-3"}
    assert _ids(db, "budget_calls") == keep_calls
    assert _ids(db, "schedule_slots", "slot") == {OLD}
    assert count(db, "audit_events") == events + 1  # the prune's own event; none removed


def test_a_month_alert_is_kept_past_a_short_age_so_it_is_not_sent_again_that_month(db):
    """With a 7-day age, a delivered budget alert (dedupe key, once per month) stays until the month it guards is
    over (32 days); a keyless message of the same age goes."""
    with db.connection() as conn, conn.transaction():
        alert = _outbox(conn, at=NOW - timedelta(days=20), dedupe_key="budget:this month:2026-08:80")
        plain = _outbox(conn, at=NOW - timedelta(days=20))
        older = _outbox(conn, at=NOW - timedelta(days=40), dedupe_key="budget:this month:2026-07:80")
    _prune(db, older_than_days=7)
    assert _ids(db, "outbox") == {alert} and not {plain, older} & _ids(db, "outbox")


def test_a_dry_run_counts_what_would_go_and_deletes_nothing(db):
    """`dry_run` reports the same counts a real prune then removes, changes no row and writes no event."""
    with db.connection() as conn, conn.transaction():
        done = _run(conn, "cancelled")
        _outbox(conn, at=OLD, run_id=done)
        _budget_call(conn, at=OLD, run_id=done)
        _action(conn, f"run:{done}:send:c-1", at=OLD)
        _dashboard(conn, "old", expired=OLD)
    before = {table: count(db, table) for table in ("outbox", "budget_calls", "connector_actions",
                                                    "dashboard_sessions", "dashboard_signins", "audit_events")}

    dry = _prune(db, dry_run=True)

    assert dry.dry_run and dry.counts == {"outbox": 1, "schedule_slots": 0, "dashboard_sessions": 1,
                                          "dashboard_signins": 1, "budget_calls": 1, "connector_actions": 1}
    assert {table: count(db, table) for table in before} == before
    assert _prune(db).counts == dry.counts


def test_an_age_of_zero_keeps_everything(db):
    with db.connection() as conn, conn.transaction():
        _outbox(conn, at=OLD - timedelta(days=3000))
    assert _prune(db, older_than_days=0) == retention.Pruned(before=None, dry_run=False, counts={})
    assert count(db, "outbox") == 1


def test_a_run_whose_outbox_rows_budget_calls_and_connector_records_were_pruned_still_replays(services, db, work):
    """The win-back campaign runs to its end; a prune a year later removes its messages, its budget reservations
    and its connector records. Replay, which reads the audit events and the run, step, approval and agent-call
    rows (none pruned), still agrees with the tables and the chain verifies."""
    seed(services)
    approve_and_finish(services, work)
    with db.connection() as conn:
        assert conn.execute("SELECT state FROM runs WHERE id = 1").fetchone()["state"] == "succeeded"
    had = {table: count(db, table) for table in ("outbox", "budget_calls", "connector_actions")}
    assert all(had.values())
    # Delivery is not running here: mark the run's messages delivered, as the console would have.
    with db.connection() as conn:
        conn.execute("UPDATE outbox SET state = 'delivered', delivered_at = now()")
        before = replay.snapshot(db, 1, anchors=anchors.book(services.settings))

    with db.connection() as conn, conn.transaction():
        pruned = retention.prune(conn, now=datetime.now(UTC) + timedelta(days=365), older_than_days=90)

    assert {table: pruned.counts[table] for table in had} == had
    assert all(count(db, table) == 0 for table in had)
    after = replay.snapshot(db, 1, anchors=anchors.book(services.settings))
    assert after.agrees and after.chain.ok
    assert after.replay == before.replay


def test_the_retention_schedule_prunes_once_a_day_and_records_the_counts(services, db):
    """The scheduler's `retention` job runs the prune in its slot with the configured age, once per slot."""
    services.settings = services.settings.model_copy(update={"retention_days": 30})
    with db.connection() as conn, conn.transaction():
        _outbox(conn, at=NOW - timedelta(days=31), run_id=_run(conn, "succeeded"))
    job = scheduler.schedules(services.settings)["retention"]

    ran = scheduler.run_slot(services, job, now=NOW)

    assert ran is not None and ran.result["pruned"]["outbox"] == 1 and count(db, "outbox") == 0
    assert scheduler.run_slot(services, job, now=NOW + timedelta(hours=1)) is None


def test_opsos_prune_prints_counts_per_table_and_its_dry_run_removes_nothing(db, database_url, redis_url,
                                                                            monkeypatch, tmp_path, capsys):
    """`opsos prune --older-than 30 --dry-run` lists what would go per table and leaves it; without the flag it
    removes it."""
    from bot.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OPSOS_DATA_DIR", str(tmp_path / "data"))
    with db.connection() as conn, conn.transaction():
        _outbox(conn, at=datetime.now(UTC) - timedelta(days=31), run_id=_run(conn, "succeeded"))

    assert main(["prune", "--older-than", "30", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would remove rows older than") and "  outbox: 1\n" in out
    assert count(db, "outbox") == 1

    assert main(["prune", "--older-than", "30"]) == 0
    assert "removed rows older than" in capsys.readouterr().out and count(db, "outbox") == 0
    assert main(["prune", "--older-than", "0"]) == 0
    assert "nothing is pruned" in capsys.readouterr().out
