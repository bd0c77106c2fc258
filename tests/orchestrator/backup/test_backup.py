"""Backups: a snapshot whose signed head is the last event it holds, restored into an empty database and proved
there; a restore that would overwrite, a damaged file, a newer schema and another key are refused unwritten."""
from __future__ import annotations

import tarfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from orchestrator import Decision, anchors, audit, backup, jobs
from orchestrator.backup import archive
from orchestrator.services import build_services
from orchestrator.stores import Stores
from tests.conftest import _database_url
from tests.orchestrator.helpers import OPERATOR, operations, pending_approval, run_state, seed, to_approval


@pytest.fixture
def empty_database(pg_admin_url: str) -> str:
    name = f"restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return _database_url(pg_admin_url, name)


def restored_settings(settings, url: str, folder: Path):
    return settings.model_copy(update={"database_url": url, "data_dir": folder})


def head_of(url: str) -> dict:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute("SELECT id, hash, kind FROM audit_events ORDER BY id DESC LIMIT 1").fetchone()


def test_a_run_waiting_for_approval_resumes_after_the_backup_is_restored(services, settings, work, redis,
                                                                          empty_database, tmp_path) -> None:
    """The round trip the issue names: back up, lose everything, restore, prove the chain, approve, finish."""
    seed(services)
    to_approval(services, work)
    approval = pending_approval(services.stores.pool, 1)
    made = backup.make(settings, services.stores.database_url, dest=tmp_path / "b.tar", now=services.now())
    assert made.chain_ok and made.head is not None
    assert made.head.event_id == head_of(services.stores.database_url)["id"]

    target = restored_settings(settings, empty_database, tmp_path / "fresh")
    restored = backup.restore(target, empty_database, made.path, now=services.now())
    assert restored.verified, restored.problem
    assert restored.chain.full and restored.chain.ok
    assert (tmp_path / "fresh" / "audit.key").read_bytes() == settings.audit_key_file.read_bytes()
    assert head_of(empty_database)["kind"] == "backup.restored"

    redis.flushdb()  # Redis is not in the backup: the queue and short-term context start empty.
    with ConnectionPool(empty_database, min_size=1, max_size=4, kwargs={"row_factory": dict_row}) as pool:
        again = build_services(target, Stores(pool=pool, redis=redis, database_url=empty_database,
                                             redis_url=target.redis_url))
        jobs.install(again)
        try:
            operations(again).decide(OPERATOR, approval, Decision.APPROVED)
            work()
            assert run_state(pool, 1) == "succeeded"
            with pool.connection() as conn:
                assert anchors.verify(conn, anchors.book(target), full=True).trusted
        finally:
            jobs.install(services)


def test_a_restore_into_a_database_that_holds_records_is_refused_and_writes_nothing(services, settings,
                                                                                    tmp_path) -> None:
    seed(services)
    made = backup.make(settings, services.stores.database_url, dest=tmp_path / "b.tar", now=services.now())
    target = restored_settings(settings, services.stores.database_url, tmp_path / "fresh")
    before = head_of(services.stores.database_url)
    with pytest.raises(backup.RestoreRefused, match="already holds opsos's tables"):
        backup.restore(target, services.stores.database_url, made.path, now=services.now())
    assert head_of(services.stores.database_url) == before
    assert not target.audit_anchor_file.exists() and not target.audit_key_file.exists()


def test_a_damaged_backup_is_named_as_such_before_anything_is_restored(services, settings, empty_database,
                                                                       tmp_path) -> None:
    made = backup.make(settings, services.stores.database_url, dest=tmp_path / "b.tar", now=services.now())
    unpacked = tmp_path / "unpacked"
    with tarfile.open(made.path) as tar:
        tar.extractall(unpacked, filter="data")
    dump = unpacked / archive.DUMP
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(damaged, "w") as tar:
        for member in sorted(unpacked.iterdir()):
            tar.add(member, arcname=member.name)
    target = restored_settings(settings, empty_database, tmp_path / "fresh")
    with pytest.raises(backup.BackupFileError, match=r"database\.pgdump does not match its checksum"):
        backup.restore(target, empty_database, damaged, now=services.now())
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is None


def _with_manifest(made: Path, dest: Path, change) -> Path:
    unpacked = dest.with_suffix(".d")
    with tarfile.open(made) as tar:
        tar.extractall(unpacked, filter="data")
    manifest = archive.Manifest.model_validate_json((unpacked / archive.MANIFEST).read_text())
    (unpacked / archive.MANIFEST).write_text(change(manifest).model_dump_json())
    with tarfile.open(dest, "w") as tar:
        for member in sorted(unpacked.iterdir()):
            tar.add(member, arcname=member.name)
    return dest


def test_a_backup_from_a_newer_schema_is_refused(services, settings, empty_database, tmp_path) -> None:
    made = backup.make(settings, services.stores.database_url, dest=tmp_path / "b.tar", now=services.now())
    newer = _with_manifest(made.path, tmp_path / "newer.tar", lambda m: m.model_copy(
        update={"schemas": {**m.schemas, "orchestrator": m.schemas["orchestrator"] + 1}}))
    with pytest.raises(backup.RestoreRefused, match="orchestrator schema is version"):
        backup.restore(restored_settings(settings, empty_database, tmp_path / "fresh"), empty_database, newer,
                       now=services.now())


def test_a_data_folder_with_another_audit_key_is_refused(services, settings, empty_database, tmp_path) -> None:
    made = backup.make(settings, services.stores.database_url, dest=tmp_path / "b.tar", now=services.now())
    target = restored_settings(settings, empty_database, tmp_path / "fresh")
    target.audit_key_file.parent.mkdir(parents=True)
    target.audit_key_file.write_text("ab" * 32 + "\n")
    with pytest.raises(backup.RestoreRefused, match="holds another audit key"):
        backup.restore(target, empty_database, made.path, now=services.now())


def test_a_backup_whose_head_another_key_signed_is_refused_before_anything_is_restored(services, settings,
                                                                                      empty_database, tmp_path) -> None:
    """Whoever rewrote the dump and its chain cannot sign the head they made with the operator's key; and a restore
    that could never be proved writes nothing (review finding: it used to fill the database first)."""
    with services.stores.pool.connection() as conn, conn.transaction():
        audit.append(conn, actor="test", kind="test.event", at=services.now())
    made = backup.make(settings, services.stores.database_url, dest=tmp_path / "b.tar", now=services.now())
    forged = _with_manifest(made.path, tmp_path / "forged.tar", lambda m: m.model_copy(update={"head": anchors.sign(
        b"\x01" * 32, event_id=m.head.event_id, head_hash=m.head.hash, at=m.head.at)}))
    with pytest.raises(backup.RestoreRefused, match="not signed with this audit key"):
        backup.restore(restored_settings(settings, empty_database, tmp_path / "fresh"), empty_database, forged,
                       now=services.now())
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is None


def test_a_backup_over_an_anchor_file_that_lost_anchors_signs_no_head(services, settings, tmp_path) -> None:
    """Review finding: the live check says NOT TRUSTED when the anchor file lost anchors the database marks; a
    backup that signed its head anyway would carry a complete anchor file into a restore reported as proved."""
    book = anchors.book(settings)
    with services.stores.pool.connection() as conn:
        audit.append(conn, actor="test", kind="test.event", at=services.now())
        assert anchors.anchor(conn, book, now=services.now()).written
    book.path.unlink()
    made = backup.make(settings, services.stores.database_url, dest=tmp_path / "b.tar", now=services.now())
    assert not made.chain_ok and made.head is None


def test_old_backups_beyond_the_kept_number_are_removed(tmp_path) -> None:
    for day in range(1, 6):
        (tmp_path / f"opsos-backup-2026120{day}T030000Z.tar").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("mine")
    gone = backup.prune(tmp_path, keep=2)
    assert sorted(p.name for p in gone) == [f"opsos-backup-2026120{d}T030000Z.tar" for d in (1, 2, 3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt", "opsos-backup-20261204T030000Z.tar", "opsos-backup-20261205T030000Z.tar"]
