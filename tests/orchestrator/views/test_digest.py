"""The daily digest from a seeded database: each section present, with the right runs, buttons and numbers."""
import struct
from datetime import datetime, timedelta

from orchestrator import budget
from orchestrator.budget import spend
from orchestrator.runs import RunEvent
from orchestrator.views import digest
from orchestrator.views.charts import budget_burn_png
from tests.orchestrator.helpers import OPERATOR, WINBACK, operations, run_state, seed, to_approval

ZONE = "Europe/Berlin"


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def _seed_a_day(services, work, db) -> dict:
    """Run 1 waits for approval; 2 succeeded and 3 failed yesterday; 4 paused; 5 stuck and near its deadline."""
    services.settings.timezone = ZONE
    now = services.now()
    zone = services.settings.zone
    yesterday_noon = spend.day_start(spend.local_day(now, zone) - timedelta(days=1), zone) + timedelta(hours=12)
    seed(services)
    ops, approval = to_approval(services, work)
    for _ in range(4):
        ops.submit(OPERATOR, WINBACK)
    ops.change_run(OPERATOR, 4, RunEvent.PAUSE)
    with db.connection() as conn, conn.transaction():
        conn.execute("UPDATE runs SET state = 'succeeded', finished_at = %s WHERE id = 2", (yesterday_noon,))
        conn.execute("UPDATE runs SET state = 'failed', reason = 'send_emails failed: smtp down', finished_at = %s"
                     " WHERE id = 3", (yesterday_noon,))
        conn.execute("UPDATE runs SET updated_at = %s WHERE id = 5", (now - timedelta(hours=2),))
        conn.execute("UPDATE intents SET deadline = %s WHERE id = 5", (now + timedelta(hours=3),))
        conn.execute("INSERT INTO agent_calls (run_id, step, tier, model, prompt_hash, output, input_tokens,"
                     " output_tokens, cost_usd, created_at) VALUES (1, 'draft', 'draft', 'm', 'h1', '{}', 900, 100,"
                     " 1.25, %s), (1, 'reason', 'reason', 'm', 'h2', '{}', 400, 100, 0.40, %s)",
                     (now, yesterday_noon))
        _spend(conn, services, tier="draft", usd=1.25, on=spend.local_day(now, zone), run_id=1)
        _spend(conn, services, tier="reason", usd=0.40, on=spend.local_day(yesterday_noon, zone), run_id=1)
    return {"approval": approval, "now": now, "yesterday": yesterday_noon}


def _spend(conn, services, *, tier: str, usd: float, on, run_id: int | None = None) -> None:
    """A settled call in the budget ledger, the record the caps are read from."""
    caps = budget.Caps.from_settings(services.settings)
    held = budget.reserve(conn, run_id=run_id, step=tier, tier=tier, model="m", estimate_usd=usd, today=on, caps=caps)
    budget.settle(conn, held, model="m", input_tokens=0, output_tokens=0, cost_usd=usd, caps=caps)


def test_digest_has_every_section_with_the_right_numbers(services, db, work):
    seeded = _seed_a_day(services, work, db)
    with db.connection() as conn:
        message = digest.build(conn, settings=services.settings, now=seeded["now"])
    sections = {s.title: s for s in message.sections}
    assert list(sections) == ["Finished yesterday", "Waiting for you", "Failing or stuck",
                              "At risk of missing the deadline", "Model spend", "Backup"]
    assert sections["Backup"].text.startswith("no nightly backup has run yet")
    assert [f.label for f in sections["Finished yesterday"].facts] == ["#2 succeeded", "#3 failed"]
    assert "smtp down" in sections["Finished yesterday"].facts[1].value
    assert [f.label for f in sections["Waiting for you"].facts] == [f"#1 {seeded['approval']}"]
    assert [f.label for f in sections["Failing or stuck"].facts] == ["#4 paused", "#5 queued"]
    assert [f.label for f in sections["At risk of missing the deadline"].facts] == ["intent #5"]
    spend_facts = {f.label: f.value for f in sections["Model spend"].facts}
    assert spend_facts["Today"].startswith("$1.25 of $5.00 (25%, ")
    same_month = seeded["yesterday"].month == seeded["now"].astimezone(services.settings.zone).month
    assert spend_facts["This month"].startswith("$1.65 of $50.00" if same_month else "$1.25 of $50.00")
    assert spend_facts["Yesterday, reason tier"] == "$0.40 (500 tokens)"
    assert ("Yesterday 2 runs finished (1 not succeeded); 1 approval waits for you; 2 workflows failing or stuck;"
            " 1 intent at risk") in message.text
    values = [a.value for a in message.actions]
    assert values == [f"approve:{seeded['approval']}", f"reject:{seeded['approval']}", "resume:4", "cancel:4",
                      "cancel:5"]
    assert all(len(v.encode()) <= 64 for v in values)
    [chart] = message.attachments
    assert chart.mime == "image/png" and _png_size(chart.data) == (800, 400)


def test_spend_shows_approved_raises_tier_caps_and_calls_in_flight(services, db):
    """Proves the digest reads the ledger the alerts use: a raise lifts the cap, a tier cap has its own line."""
    services.settings.budget_tier_daily_usd = {"reason": 1.0}
    caps = budget.Caps.from_settings(services.settings)
    now = services.now()
    today = spend.local_day(now, services.settings.zone)
    with db.connection() as conn:
        _spend(conn, services, tier="reason", usd=0.75, on=today)
        budget.reserve(conn, run_id=None, step="draft", tier="draft", model="m", estimate_usd=0.10, today=today,
                       caps=caps)
        conn.execute("UPDATE budget_periods SET raised_usd = 2 WHERE scope = 'all' AND period = 'day'")
        message = digest.build(conn, settings=services.settings, now=now)
    facts = {f.label: f.value for f in next(s for s in message.sections if s.title == "Model spend").facts}
    assert facts["Today"].startswith("$0.75 of $7.00 (11%") and "$0.10 in flight" in facts["Today"]
    assert facts["Today, reason tier"].startswith("$0.75 of $1.00 (75%")
    assert "$0.75 of $7.00" in message.text


def test_digest_buttons_work_through_the_front_door(services, db, work):
    seeded = _seed_a_day(services, work, db)
    ops = operations(services)
    with db.connection() as conn:
        message = digest.build(conn, settings=services.settings, now=seeded["now"])
    resume = next(a.value for a in message.actions if a.value.startswith("resume:"))
    ops.handle_text(OPERATOR, resume.replace(":", " "))
    assert run_state(db, 4) == "queued"


def test_an_empty_day_says_so_in_each_section(services, db):
    with db.connection() as conn:
        message = digest.build(conn, settings=services.settings, now=datetime.now(services.settings.zone))
    texts = {s.title: s.text for s in message.sections}
    assert texts["Finished yesterday"] == "no run finished"
    assert texts["Waiting for you"] == "nothing waits for you"
    assert message.actions == []


def test_budget_burn_chart_is_a_png_of_the_expected_size():
    days = [spend.BurnDay(day=datetime(2026, 3, 1).date() + timedelta(days=i), usd=i / 4) for i in range(30)]
    png = budget_burn_png(days, daily_cap=5.0)
    assert _png_size(png) == (800, 400)
    assert len(png) > 5000
