"""The scheduler: slots in the operator's time zone, once per slot across schedulers, a missed digest sent late once."""
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from orchestrator import scheduler
from orchestrator.scheduler import Schedule
from tests.concurrency import at_once
from tests.orchestrator.helpers import OPERATOR, WINBACK, count, operations

BERLIN = ZoneInfo("Europe/Berlin")
DIGEST = Schedule("digest", daily_at=time(7, 30))
# Fixed moments, never the wall clock: 07:30 in Berlin on a March Tuesday (06:30 UTC), and a midday
# whose next half hour stays on the same Berlin day (the budget checks count in the operator's day).
SLOT = datetime(2026, 3, 10, 7, 30, tzinfo=BERLIN).astimezone(UTC)
MIDDAY = datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN).astimezone(UTC)


@pytest.fixture
def berlin(services):
    services.settings.timezone = "Europe/Berlin"
    services.settings.home_channel = "telegram:42"
    _at(services, MIDDAY)
    return services


def _at(services, moment: datetime) -> None:
    services.clock = lambda: moment


def test_daily_slot_is_the_last_local_digest_time_that_has_passed():
    assert DIGEST.slot(datetime(2026, 3, 10, 6, 0, tzinfo=UTC), BERLIN) == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)
    assert DIGEST.slot(datetime(2026, 3, 10, 6, 45, tzinfo=UTC), BERLIN) == datetime(2026, 3, 10, 6, 30, tzinfo=UTC)
    # After the spring change, 07:30 in Berlin is 05:30 UTC.
    assert DIGEST.slot(datetime(2026, 3, 29, 6, 0, tzinfo=UTC), BERLIN) == datetime(2026, 3, 29, 5, 30, tzinfo=UTC)


def test_interval_slots_are_aligned_and_stable():
    every = Schedule("sla", every=timedelta(minutes=15))
    assert every.slot(datetime(2026, 3, 10, 9, 44, 59, tzinfo=UTC), BERLIN) == datetime(2026, 3, 10, 9, 30,
                                                                                          tzinfo=UTC)


def test_two_schedulers_send_one_digest_per_slot(berlin, db, redis, work):
    _at(berlin, SLOT + timedelta(minutes=1))
    first, second = (scheduler.cron(redis, berlin.settings, name=n) for n in ("one", "two"))
    # Both tickers enqueue every schedule; the slot rows in PostgreSQL let only one run each.
    every = len(scheduler.schedules(berlin.settings))
    assert len(first.enqueue_jobs()) == every and len(second.enqueue_jobs()) == every
    work()
    assert count(db, "outbox", "dedupe_key LIKE 'digest:%'") == 1
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM outbox WHERE dedupe_key LIKE 'digest:%'").fetchone()
        claimed = conn.execute("SELECT * FROM schedule_slots WHERE job = 'digest'").fetchall()
    assert (row["channel"], row["conversation"]) == ("telegram", "42")
    assert len(claimed) == 1 and not claimed[0]["late"]
    assert "late" not in row["message"]["title"]
    assert row["message"]["attachments"][0]["mime"] == "image/png"


def test_threads_racing_for_one_slot_run_it_once(berlin, db):
    results = at_once([lambda: scheduler.run_slot(berlin, DIGEST, now=SLOT + timedelta(seconds=30))] * 4)
    assert sum(r is not None for r in results) == 1
    assert count(db, "outbox", "dedupe_key LIKE 'digest:%'") == 1
    assert count(db, "audit_events", "kind = 'digest.sent'") == 1


def test_a_missed_digest_is_sent_late_at_start_up_once(berlin, db):
    # Yesterday's went out on time, so opsos was running before; today's it missed.
    assert scheduler.run_slot(berlin, DIGEST, now=SLOT - timedelta(days=1, minutes=-1)) is not None
    down_until = SLOT + timedelta(hours=5, minutes=12)
    ran = scheduler.run_due(berlin, now=down_until)
    assert [r.job for r in ran if r.late] == ["digest"]
    # A second start-up (or a second scheduler) finds the slot done.
    assert all(r.job != "digest" for r in scheduler.run_due(berlin, now=down_until + timedelta(minutes=3)))
    with db.connection() as conn:
        rows = conn.execute("SELECT message FROM outbox WHERE dedupe_key LIKE 'digest:%' ORDER BY id").fetchall()
    assert len(rows) == 2 and "late" not in rows[0]["message"]["title"]
    assert "(late: due 07:30, sent 5h12 later" in rows[1]["message"]["title"]
    # The next morning's digest is on time again.
    next_day = scheduler.run_slot(berlin, DIGEST, now=SLOT + timedelta(days=1, minutes=2))
    assert next_day is not None and not next_day.late
    assert count(db, "outbox", "dedupe_key LIKE 'digest:%'") == 3


def test_a_new_install_started_after_the_digest_time_sends_no_late_digest(berlin, db):
    """Proves a first start owes nothing from before it: no 'late' digest of a day opsos never ran."""
    assert scheduler.run_slot(berlin, DIGEST, now=SLOT + timedelta(hours=3)) is None
    with db.connection() as conn:
        [claimed] = conn.execute("SELECT result FROM schedule_slots WHERE job = 'digest'").fetchall()
    assert claimed["result"]["skipped"].startswith("first start")
    assert count(db, "outbox", "dedupe_key LIKE 'digest:%'") == 0
    # The next morning's digest goes out as usual.
    next_day = scheduler.run_slot(berlin, DIGEST, now=SLOT + timedelta(days=1, minutes=2))
    assert next_day is not None and not next_day.late
    assert count(db, "outbox", "dedupe_key LIKE 'digest:%'") == 1


def test_a_slot_that_crashes_is_done_by_the_next_tick(berlin, db, monkeypatch):
    now = SLOT + timedelta(minutes=1)

    def crash(*_args, **_kwargs):
        raise RuntimeError("worker died mid-digest")

    monkeypatch.setitem(scheduler.ACTIONS, "digest", crash)
    with pytest.raises(RuntimeError):
        scheduler.run_slot(berlin, DIGEST, now=now)
    assert count(db, "schedule_slots") == 0
    monkeypatch.setitem(scheduler.ACTIONS, "digest", scheduler.send_digest)
    assert scheduler.run_slot(berlin, DIGEST, now=now) is not None
    assert count(db, "outbox", "dedupe_key LIKE 'digest:%'") == 1


def test_sla_alert_is_sent_once_per_intent_and_again_when_missed(berlin, db):
    ops = operations(berlin)
    ops.submit(OPERATOR, WINBACK)
    now = MIDDAY
    with db.connection() as conn, conn.transaction():
        conn.execute("UPDATE intents SET deadline = %s WHERE id = 1", (now + timedelta(hours=2),))
    sla = scheduler.schedules(berlin.settings)["sla"]
    assert scheduler.run_slot(berlin, sla, now=now).result == {"alerted": [1]}
    assert scheduler.run_slot(berlin, sla, now=now + timedelta(minutes=15)).result == {"alerted": []}
    assert scheduler.run_slot(berlin, sla, now=now + timedelta(hours=3)).result == {"alerted": [1]}
    with db.connection() as conn:
        titles = [r["message"]["title"] for r in conn.execute(
            "SELECT message FROM outbox WHERE dedupe_key LIKE 'sla:%' ORDER BY id").fetchall()]
    assert "at risk" in titles[0] and "missed its deadline" in titles[1]


def test_budget_alerts_fire_once_per_threshold(berlin, db):
    from orchestrator import budget as ledger

    ops = operations(berlin)
    ops.submit(OPERATOR, WINBACK)
    now = MIDDAY

    def spent(usd: float, tag: str) -> None:
        # Spend as a model call leaves it in the ledger: a small reservation, settled at the real cost.
        caps = ledger.Caps.from_settings(berlin.settings)
        today = ledger.local_today(now, berlin.settings)
        with db.connection() as conn:
            held = ledger.reserve(conn, run_id=1, step=tag, tier="draft", model="m", estimate_usd=0.01,
                                  today=today, caps=caps)
            with conn.transaction():
                ledger.settle(conn, held, model="m", input_tokens=1, output_tokens=1, cost_usd=usd, caps=caps)

    budget = scheduler.schedules(berlin.settings)["budget"]
    spent(2.6, "a")  # 52 % of the $5 day
    assert scheduler.run_slot(berlin, budget, now=now).result["alerts"] == ["budget:today:2026-03-10:50"]
    assert scheduler.run_slot(berlin, budget, now=now + timedelta(minutes=15)).result["alerts"] == []
    spent(2.5, "b")  # 102 %
    assert scheduler.run_slot(berlin, budget, now=now + timedelta(minutes=30)).result["alerts"][0].endswith(":100")
    assert count(db, "outbox", "dedupe_key LIKE 'budget:%'") == 2


def test_budget_check_counts_a_raise_the_operator_approved(berlin, db):
    """$5.10 spent against a $5 day whose cap the operator raised by $5 is 51 %, not a 100 % alarm."""
    from orchestrator import budget as ledger

    operations(berlin).submit(OPERATOR, WINBACK)
    now = MIDDAY
    caps = ledger.Caps.from_settings(berlin.settings)
    today = ledger.local_today(now, berlin.settings)
    with db.connection() as conn:
        held = ledger.reserve(conn, run_id=1, step="s", tier="draft", model="m", estimate_usd=0.01, today=today,
                              caps=caps)
        with conn.transaction():
            ledger.settle(conn, held, model="m", input_tokens=1, output_tokens=1, cost_usd=5.1, caps=caps)
        conn.execute("UPDATE budget_periods SET raised_usd = 5 WHERE scope = 'all' AND period = 'day'")
    alerts = scheduler.run_slot(berlin, scheduler.schedules(berlin.settings)["budget"], now=now).result["alerts"]
    assert alerts == ["budget:today:2026-03-10:50"]


def test_budget_check_late_in_the_evening_counts_the_operators_day_then_the_next(berlin, db):
    """Spend at 23:40 in Berlin (22:40 UTC) is that Berlin day's: the 23:50 check alerts on 2026-03-10, and the
    check ten minutes after midnight starts 2026-03-11 at nothing spent, so it alerts nothing."""
    from orchestrator import budget as ledger

    evening = datetime(2026, 3, 10, 23, 40, tzinfo=BERLIN).astimezone(UTC)
    operations(berlin).submit(OPERATOR, WINBACK)
    caps = ledger.Caps.from_settings(berlin.settings)
    with db.connection() as conn:
        held = ledger.reserve(conn, run_id=1, step="s", tier="draft", model="m", estimate_usd=0.01,
                              today=ledger.local_today(evening, berlin.settings), caps=caps)
        with conn.transaction():
            ledger.settle(conn, held, model="m", input_tokens=1, output_tokens=1, cost_usd=2.6, caps=caps)
    check = scheduler.schedules(berlin.settings)["budget"]
    assert scheduler.run_slot(berlin, check, now=evening + timedelta(minutes=10)).result["alerts"] == [
        "budget:today:2026-03-10:50"]
    assert scheduler.run_slot(berlin, check, now=evening + timedelta(minutes=30)).result["alerts"] == []


def test_the_digest_carries_the_audit_anchor_line(berlin, db):
    """Proves the anchor reaches the operator's chat history: the morning digest signs the head (#N) and says it in
    a short line with the first 12 hex digits of the hash and of the signature, the same the anchor file holds."""
    from orchestrator import anchors

    operations(berlin).submit(OPERATOR, WINBACK)
    assert scheduler.run_slot(berlin, DIGEST, now=SLOT + timedelta(minutes=1)) is not None
    [anchor], refused = anchors.read(anchors.book(berlin.settings))
    assert refused == []
    with db.connection() as conn:
        head = conn.execute("SELECT id, hash FROM audit_events WHERE kind <> 'digest.sent' ORDER BY id DESC LIMIT 1"
                            ).fetchone()
        message = conn.execute("SELECT message FROM outbox WHERE dedupe_key LIKE 'digest:%'").fetchone()["message"]
    assert (anchor.event_id, anchor.hash) == (head["id"], head["hash"])
    [section] = [s for s in message["sections"] if s["title"].startswith("Audit anchor")]
    assert section["text"].startswith(f"Audit anchor: event #{head['id']}, hash {head['hash'][:12]}, "
                                      f"signature {anchor.sig[:12]}, ")


def test_the_anchor_job_signs_new_events_and_alerts_once_when_the_log_was_rewritten(berlin, db, database_url):
    """Every few minutes the head is signed; once the anchored events are rewritten, the job signs nothing more and
    tells the operator once, however many times it runs."""
    from orchestrator import anchors

    job = scheduler.schedules(berlin.settings)["audit_anchor"]
    operations(berlin).submit(OPERATOR, WINBACK)
    first = scheduler.run_slot(berlin, job, now=MIDDAY)
    assert first.result["ok"] and first.result["anchored"] is not None
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"DELETE FROM audit_events WHERE id >= {first.result['anchored']}")
    for minutes in (5, 10):
        ran = scheduler.run_slot(berlin, job, now=MIDDAY + timedelta(minutes=minutes))
        assert not ran.result["ok"] and ran.result["anchored"] is None
    assert len(anchors.read(anchors.book(berlin.settings))[0]) == 1
    with db.connection() as conn:
        alerts = conn.execute("SELECT message FROM outbox WHERE dedupe_key LIKE 'audit-check:%'").fetchall()
    assert len(alerts) == 1
    assert f"events up to #{first.result['anchored']} were rewritten or removed" in alerts[0]["message"]["text"]


def test_a_slot_another_process_is_still_running_is_left_at_once_not_waited_on(berlin, db):
    """Review finding: a second tick of a long slot (the nightly backup) waited on the claim's key for the whole
    dump, holding a worker the runs need. A slot whose lock is held elsewhere is now left as taken."""
    slot = DIGEST.slot(SLOT + timedelta(seconds=30), berlin.settings.zone)
    with psycopg.connect(berlin.stores.database_url) as running:
        running.execute(scheduler.TRY_SLOT, {"slot": f"digest:{slot.isoformat()}"})
        assert scheduler.run_slot(berlin, DIGEST, now=SLOT + timedelta(seconds=30)) is None
    assert scheduler.run_slot(berlin, DIGEST, now=SLOT + timedelta(seconds=31)) is not None
