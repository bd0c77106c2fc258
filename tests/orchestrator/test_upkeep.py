"""Memory upkeep against the real PostgreSQL, Redis and embedder: reclamation, summarisation and their schedule."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.summariser import offline_summary
from memory import Kind, MemoryNotFound
from orchestrator import audit, scheduler, upkeep
from tests.orchestrator.budget.helpers import priced
from tests.orchestrator.helpers import count

# 04:00 UTC: the day's 03:30 upkeep slot (the test settings' zone is UTC) has started.
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
PAST_RETENTION = NOW - timedelta(days=400)  # interactions are kept 365 days
OLD = NOW - timedelta(days=120)  # older than the 90 days after which interactions are summarised


@pytest.fixture
def upkept(services):
    services.clock = lambda: NOW
    return services


def _events(db, kind: str) -> list[audit.AuditEvent]:
    with db.connection() as conn:
        return [e for e in audit.events(conn) if e.kind == kind]


def test_reclaim_removes_an_unreferenced_memory_past_retention_and_audits_it(upkept, db):
    """Proves: a memory past retention that nothing references is deleted, with one `memory.reclaimed`
    event carrying its id, ref, subject and kind but not its text; a younger one stays; a second run
    removes nothing and writes nothing."""
    memory = upkept.memory
    stale = memory.remember("Carla said thanks for the quick reply.", kind="customer_interaction",
                            subject="customer:carla", ref="zd-5", at=PAST_RETENTION)
    young = memory.remember("Dan asked about opening hours.", kind="customer_interaction",
                            subject="customer:dan", at=OLD)

    removed = upkeep.reclaim_memories(upkept, NOW)

    assert [r.id for r in removed] == [stale.id]
    with pytest.raises(MemoryNotFound):
        memory.get(stale.id)
    assert memory.get(young.id).id == young.id
    [event] = _events(db, "memory.reclaimed")
    assert event.actor == "upkeep"
    assert {k: event.payload[k] for k in ("id", "ref", "subject", "kind")} == {
        "id": stale.id, "ref": "zd-5", "subject": "customer:carla", "kind": "customer_interaction"}
    assert "thanks" not in json.dumps(event.payload)

    assert upkeep.reclaim_memories(upkept, NOW) == []
    assert len(_events(db, "memory.reclaimed")) == 1
    with db.connection() as conn:
        assert audit.verify(conn).ok


def test_a_cited_memory_is_never_reclaimed_however_old(upkept, db):
    """Proves: a memory an agent cited in a proposal survives reclamation long after its retention
    ended, and no audit event claims it was removed."""
    memory = upkept.memory
    cited = memory.remember("Ana complained about late delivery.", kind="customer_interaction",
                            subject="customer:ana", at=NOW - timedelta(days=2000))
    assert memory.cite([cited.id], run_id=7, step="draft_reply", step_key="run:7:draft_reply") == 1

    assert upkeep.reclaim_memories(upkept, NOW) == []
    assert upkeep.reclaim_memories(upkept, NOW + timedelta(days=3650)) == []
    assert memory.get(cited.id).refcount == 1
    assert _events(db, "memory.reclaimed") == []


def test_old_interactions_become_one_linked_summary_by_the_offline_draft_tier(upkept, db):
    """Proves: a subject's interactions older than 90 days are compacted, on the offline draft tier,
    into one deterministic summary memory linked to each source; the sources are kept; recent ones
    and other kinds are left out; one `memory.summarised` event; a second run does nothing."""
    memory = upkept.memory
    sources = [
        memory.remember(text, kind="customer_interaction", subject="customer:ana", at=OLD + timedelta(days=i))
        for i, text in enumerate(["Ana ordered 40 mugs. She wants them by May.",
                                  "Ana asked for gift wrapping on every mug"])
    ]
    recent = memory.remember("Ana asked where her parcel is.", kind="customer_interaction",
                             subject="customer:ana", at=NOW - timedelta(days=3))
    memory.remember("Ana pays by card.", kind="fact", subject="customer:ana", at=OLD)

    [summary] = upkeep.summarise_interactions(upkept, NOW)

    assert summary.kind == Kind.SUMMARY and summary.subject == "customer:ana"
    assert summary.text == ("2 earlier interactions with customer:ana: Ana ordered 40 mugs. "
                            "Ana asked for gift wrapping on every mug.")
    assert summary.provenance["summarises"] == [s.id for s in sources]
    assert summary.provenance["source"] == "upkeep"
    with db.connection() as conn:
        linked = conn.execute("SELECT to_id FROM memory_links WHERE from_type = 'memory' AND from_id = %s"
                              " AND relation = 'summarises' ORDER BY to_id", (str(summary.id),)).fetchall()
    assert [int(r["to_id"]) for r in linked] == [s.id for s in sources]
    for kept in (*sources, recent):
        assert memory.get(kept.id).current
    [event] = _events(db, "memory.summarised")
    assert event.payload["memory_id"] == summary.id and event.payload["sources"] == [s.id for s in sources]
    assert event.payload["model"] == "offline-template-drafter"

    assert upkeep.summarise_interactions(upkept, NOW) == []
    assert count(db, "memories", "kind = 'summary'") == 1
    assert len(_events(db, "memory.summarised")) == 1


def _old_interactions(memory, subjects: list[str]) -> None:
    for n, subject in enumerate(subjects):
        memory.remember(f"{subject} ordered {n + 2} mugs.", kind="customer_interaction", subject=subject, at=OLD)


def test_summaries_are_paid_for_in_the_budget_ledger(upkept, db, settings, tmp_path):
    """Proves upkeep's model calls count against the caps like an agent's: reserved, then settled at their cost."""
    priced(upkept, settings, tmp_path, draft=1.0)
    _old_interactions(upkept.memory, ["customer:ana", "customer:ben"])
    assert len(upkeep.summarise_interactions(upkept, NOW)) == 2
    with db.connection() as conn:
        calls = conn.execute("SELECT run_id, step, tier, state, cost_usd::float8 AS usd FROM budget_calls").fetchall()
        spent = conn.execute("SELECT spent_usd::float8 AS usd FROM budget_periods"
                             " WHERE scope = 'draft' AND period = 'day'").fetchone()["usd"]
    assert [(c["run_id"], c["step"], c["tier"], c["state"]) for c in calls] == [
        (None, "upkeep", "draft", "settled")] * 2
    assert spent == pytest.approx(sum(c["usd"] for c in calls)) and spent > 0
    events = _events(db, "memory.summarised")
    assert sum(e.payload["cost_usd"] for e in events) == pytest.approx(spent)


def test_summaries_wait_when_the_draft_tier_has_no_budget_left(upkept, db, settings, tmp_path):
    """Proves upkeep never overspends: at the cap nothing is called, nothing is summarised, the next run may."""
    priced(upkept, settings, tmp_path, draft=1.0, budget_tier_daily_usd={"draft": 0.000001})
    _old_interactions(upkept.memory, ["customer:ana"])
    assert upkeep.summarise_interactions(upkept, NOW) == []
    assert count(db, "memories", "kind = 'summary'") == 0 and count(db, "budget_calls") == 0
    assert _events(db, "memory.summarised") == []


def test_scheduled_upkeep_runs_once_per_slot_even_when_ticked_twice(upkept, db):
    """Proves: `memory_upkeep` is a daily schedule at 03:30 local; two ticks in the same slot run it
    once (one claim, one summary, one reclamation event), and the next day's slot runs again."""
    memory = upkept.memory
    stale = memory.remember("Carla said thanks for the quick reply.", kind="customer_interaction",
                            subject="customer:carla", at=PAST_RETENTION)
    memory.remember("Bob asked for a discount on 200 units.", kind="customer_interaction",
                    subject="customer:bob", at=OLD)
    schedule = scheduler.schedules(upkept.settings)["memory_upkeep"]
    assert schedule.slot(NOW, upkept.settings.zone) == datetime(2026, 3, 10, 3, 30, tzinfo=UTC)

    first = scheduler.tick("memory_upkeep")
    upkept.clock = lambda: NOW + timedelta(hours=2)
    second = scheduler.tick("memory_upkeep")

    assert first == "ran 2026-03-10T03:30:00+00:00" and second == "taken"
    with db.connection() as conn:
        [slot] = conn.execute("SELECT * FROM schedule_slots WHERE job = 'memory_upkeep'").fetchall()
    # Carla's interaction is summarised before it is reclaimed: its gist outlives it.
    assert sorted(slot["result"]["summarised"]) == ["customer:bob", "customer:carla"]
    assert slot["result"]["reclaimed"] == [stale.id]
    assert len(_events(db, "memory.reclaimed")) == 1
    assert len(_events(db, "memory.summarised")) == 2
    assert count(db, "memories", "kind = 'summary'") == 2

    ran = scheduler.run_slot(upkept, schedule, now=NOW + timedelta(days=1))
    assert ran is not None and ran.result == {"summarised": [], "reclaimed": []}


def test_offline_summary_counts_every_interaction_and_shows_the_first_ten():
    """Proves: the offline tier's summary is deterministic: a count, first sentences, the rest counted."""
    interactions = [{"text": f"Note {i}. More detail {i}."} for i in range(12)]
    summary = offline_summary({"subject": "customer:ana", "interactions": interactions})["summary"]
    assert summary.startswith("12 earlier interactions with customer:ana: Note 0. Note 1.")
    assert summary.endswith("Note 9. (and 2 more)") and "detail" not in summary


def test_cli_reclaim_dry_run_removes_nothing_and_the_real_run_audits(upkept, db, monkeypatch, database_url,
                                                                     redis_url, tmp_path: Path, capsys):
    """Proves: `opsos memory reclaim --dry-run` prints what would go and leaves it; without the flag
    it removes it and writes its audit event."""
    from bot.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OPSOS_DATA_DIR", str(tmp_path / "data"))
    stale = upkept.memory.remember("Carla said thanks for the quick reply.", kind="customer_interaction",
                                   subject="customer:carla", ref="zd-5",
                                   at=datetime.now(UTC) - timedelta(days=400))

    assert main(["memory", "reclaim", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would remove 1:") and f"id={stale.id} ref=zd-5 customer:carla" in out
    assert upkept.memory.get(stale.id).id == stale.id

    assert main(["memory", "reclaim"]) == 0
    assert capsys.readouterr().out.startswith("removed 1:")
    with pytest.raises(MemoryNotFound):
        upkept.memory.get(stale.id)
    assert [e.payload["id"] for e in _events(db, "memory.reclaimed")] == [stale.id]
