"""`backup.make`: one consistent snapshot of the database, and the audit log's head in it signed.

The dump and the head come from one exported snapshot (`pg_export_snapshot`, handed to `pg_dump --snapshot`):
the head the backup signs is exactly the last event the dump holds, whatever commits while it runs, and
nothing is locked for the dump's length. The chain is checked against its anchors inside that snapshot before
the head is signed, so a backup never vouches for a log that was rewritten.
"""
from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import structlog
from psycopg.rows import dict_row
from pydantic import BaseModel

from orchestrator import anchors, audit
from orchestrator.anchors import Anchor
from orchestrator.backup import archive, postgres
from orchestrator.settings import Settings

log = structlog.get_logger(__name__)

NAME = "opsos-backup-{at:%Y%m%dT%H%M%SZ}.tar"
PATTERN = "opsos-backup-*.tar"
SCHEMA = "SELECT component, max(version) AS version FROM schema_migrations GROUP BY component"
HEAD_HASH = "SELECT hash FROM audit_events WHERE id = %s"


class BackupMade(BaseModel):
    path: Path
    bytes: int
    head: Anchor | None
    # Whether the chain verified in the snapshot; when not, the backup is kept but its head is not signed.
    chain_ok: bool
    checked: int


def default_path(settings: Settings, now: datetime) -> Path:
    return settings.backup_folder / NAME.format(at=now.astimezone(UTC))


def _verify_in_snapshot(conn: psycopg.Connection, book: anchors.AnchorBook, head_id: int | None,
                        ) -> tuple[audit.ChainReport, list[Anchor]]:
    """The chain up to `head_id` checked from the newest anchor at or below it; and those anchors. An anchor
    written after the snapshot was taken names an event the snapshot cannot see, so only older ones count."""
    found, _refused = anchors.read(book)
    covered = sorted((a for a in found if head_id is not None and a.event_id <= head_id), key=lambda a: a.event_id)
    marked = conn.execute(anchors.NEWEST_MARK).fetchone()["event_id"]
    if marked is not None and marked > (covered[-1].event_id if covered else 0):
        # The file lost anchors opsos wrote (`anchors.verify`): signing this head would vouch for what they covered.
        return audit.ChainReport(ok=False, checked=0, problem="the anchor file lost anchors opsos wrote"), covered
    if not covered:
        return audit.verify(conn), covered
    newest = covered[-1]
    row = conn.execute(HEAD_HASH, (newest.event_id,)).fetchone()
    if row is None or row["hash"] != newest.hash:
        return audit.ChainReport(ok=False, checked=0, first_broken_id=newest.event_id,
                                 problem="an anchored event was rewritten or removed"), covered
    return audit.verify(conn, after=newest.event_id, after_hash=newest.hash), covered


def make(settings: Settings, database_url: str, *, dest: Path, now: datetime) -> BackupMade:
    """Write a backup of the database at `database_url` to `dest`. Raises ToolFailed or OSError."""
    book = anchors.book(settings)
    with tempfile.TemporaryDirectory(prefix="opsos-backup-") as work, \
            psycopg.connect(database_url, row_factory=dict_row) as conn:
        folder = Path(work)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            snapshot = conn.execute("SELECT pg_export_snapshot() AS id").fetchone()["id"]
            last = conn.execute(audit.LAST).fetchone()
            schema = {r["component"]: r["version"] for r in conn.execute(SCHEMA)}
            report, covered = _verify_in_snapshot(conn, book, last["id"] if last else None)
            # The snapshot stays exported while this transaction is open: pg_dump must finish inside it.
            postgres.dump(database_url, folder / archive.DUMP, snapshot=snapshot)
        head = (anchors.sign(book.key, event_id=last["id"], head_hash=last["hash"], at=now)
                if last is not None and report.ok else None)
        members = {archive.DUMP: folder / archive.DUMP}
        anchor_lines = [a.model_dump_json() for a in covered] + ([head.model_dump_json()] if head else [])
        (folder / archive.ANCHORS).write_text("".join(line + "\n" for line in anchor_lines))
        members[archive.ANCHORS] = folder / archive.ANCHORS
        if head is not None:
            (folder / archive.HEAD).write_text(head.model_dump_json())
            members[archive.HEAD] = folder / archive.HEAD
        # A key given in OPSOS_AUDIT_KEY is the operator's to keep; the one opsos made lives beside the data
        # and would die with the disk, so it travels with the backup.
        key_included = settings.audit_key is None
        if key_included:
            members[archive.KEY] = settings.audit_key_file
        manifest = archive.Manifest(created_at=now, schemas=schema, head=head, chain_ok=report.ok,
                                    key_included=key_included,
                                    sha256={name: archive.sha256_of(path) for name, path in members.items()})
        size = archive.write(dest, manifest, members)
    log.info("backup.made", path=str(dest), bytes=size, head=head.event_id if head else None, chain_ok=report.ok)
    return BackupMade(path=dest, bytes=size, head=head, chain_ok=report.ok, checked=report.checked)


def prune(folder: Path, *, keep: int) -> list[Path]:
    """Remove all but the `keep` newest backups in `folder` (by the time in their names); the removed ones."""
    made = sorted(folder.glob(PATTERN), reverse=True)
    gone = made[keep:]
    for path in gone:
        path.unlink(missing_ok=True)
    if gone:
        log.info("backup.pruned", removed=[p.name for p in gone], kept=keep)
    return gone
