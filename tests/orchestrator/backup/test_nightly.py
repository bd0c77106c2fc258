"""The nightly backup slot: once per night, the newest N kept, its outcome in the digest, a failure told once."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator import scheduler
from orchestrator.views import digest
from tests.orchestrator.helpers import count

NIGHT = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)


def nightly(services):
    return scheduler.schedules(services.settings)["backup"]


def test_each_night_makes_one_backup_and_keeps_the_newest_ones(services, db, tmp_path) -> None:
    services.settings.backup_dir = tmp_path / "backups"
    services.settings.backup_keep = 2
    for night in range(3):
        at = NIGHT + timedelta(days=night, minutes=5)
        ran = scheduler.run_slot(services, nightly(services), now=at)
        assert ran is not None and "failed" not in ran.result
        # A second tick of the same night finds the slot taken: no second backup.
        assert scheduler.run_slot(services, nightly(services), now=at + timedelta(minutes=1)) is None
    kept = sorted(p.name for p in (tmp_path / "backups").iterdir())
    assert kept == ["opsos-backup-20260311T030500Z.tar", "opsos-backup-20260312T030500Z.tar"]
    assert count(db, "audit_events", "kind = 'backup.made'") == 3
    with db.connection() as conn:
        line = digest.gather(conn, settings=services.settings, now=NIGHT + timedelta(days=2, hours=5))
    assert line.backup_result is not None and line.backup_result["path"].endswith("20260312T030500Z.tar")


def test_a_backup_that_fails_is_recorded_told_once_and_shown_in_the_digest(services, db, tmp_path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the backup folder should be")
    services.settings.backup_dir = blocked
    services.settings.home_channel = "telegram:42"
    ran = scheduler.run_slot(services, nightly(services), now=NIGHT + timedelta(minutes=5))
    assert ran is not None and "failed" in ran.result
    assert count(db, "audit_events", "kind = 'backup.failed'") == 1
    assert count(db, "outbox", "message->>'title' LIKE 'Last night''s backup failed%'") == 1
    with db.connection() as conn:
        message = digest.build(conn, settings=services.settings, now=NIGHT + timedelta(hours=5))
    section = next(s for s in message.sections if s.title == "Backup")
    assert "FAILED" in section.text and "opsos backup" in section.text


def test_no_backup_slot_when_backups_are_off(services) -> None:
    services.settings.backup_keep = 0
    assert "backup" not in scheduler.schedules(services.settings)
