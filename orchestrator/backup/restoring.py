"""`backup.restore`: a backup brought back into an empty data folder, then proved: the audit chain re-hashed
from its first event against its anchors, and the signed head found again at the end of it.

Refused before anything is written when the target is not empty (a database with opsos's tables, an anchor
file with anchors), when the backup's schema is newer than this opsos, or when the audit key cannot be the one
the head was signed with. The dump goes in as one transaction, so a restore that fails leaves the database
empty; the key and anchor files are written after it.
"""
from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

import psycopg
import structlog
from psycopg.rows import dict_row
from pydantic import BaseModel

from orchestrator import anchors, audit
from orchestrator.anchors import AnchorReport
from orchestrator.backup import archive, postgres
from orchestrator.backup.archive import Manifest
from orchestrator.errors import OpsError
from orchestrator.migrations import COMPONENTS, migrate
from orchestrator.settings import Settings

log = structlog.get_logger(__name__)

HAS_SCHEMA = "SELECT to_regclass('public.schema_migrations') IS NOT NULL AS found"


class RestoreRefused(OpsError):
    """The restore would overwrite something, or could not be proved; nothing was written."""


class Restored(BaseModel):
    manifest: Manifest
    chain: AnchorReport
    # The signed head the backup carried is the last event restored, with the same hash, under this key.
    head_found: bool
    problem: str = ""

    @property
    def verified(self) -> bool:
        return self.chain.trusted and self.head_found


def _check_schema(manifest: Manifest) -> None:
    for component, version in manifest.schemas.items():
        known = len(COMPONENTS.get(component, []))
        if version > known:
            raise RestoreRefused(f"the backup's {component} schema is version {version}; this opsos knows up to "
                                 f"{known}: restore it with the opsos that made it, or a newer one")


def _audit_key(settings: Settings, unpacked: Path, manifest: Manifest) -> bytes | None:
    """The key file's content to write (None when nothing is to be written), after checking it can sign the head."""
    if not manifest.key_included:
        if settings.audit_key is None:
            raise RestoreRefused("this backup was made with OPSOS_AUDIT_KEY set; set it to the same key to restore")
        return None
    carried = (unpacked / archive.KEY).read_bytes()
    if settings.audit_key is not None:
        raise RestoreRefused("the backup carries the audit key opsos made; unset OPSOS_AUDIT_KEY to restore it")
    target = settings.audit_key_file
    if target.exists():
        if target.read_bytes().strip() != carried.strip():
            raise RestoreRefused(f"{target} holds another audit key; restore into an empty data folder")
        return None
    return carried


def _write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())


def _head_found(conn: psycopg.Connection, book: anchors.AnchorBook, manifest: Manifest) -> str:
    """Why the backup's head is not where it must be; "" when it is."""
    head = manifest.head
    row = conn.execute(audit.LAST).fetchone()
    if head is None:
        if manifest.chain_ok and row is None:
            return ""
        if manifest.chain_ok:
            return "the backup was made with an empty audit log, but the restored one holds events"
        return "the backup was made while the audit chain did not verify, so its head was not signed"
    if not anchors.signed(book.key, head):
        return "the backup's head is not signed with this audit key"
    if row is None or row["id"] != head.event_id or row["hash"] != head.hash:
        return f"the last restored audit event is not the backup's signed head (event {head.event_id})"
    return ""


def restore(settings: Settings, database_url: str, file: Path, *, now: datetime) -> Restored:
    """Restore `file` into the (empty) database at `database_url` and this data folder's anchor and key files.

    Raises RestoreRefused (nothing written), BackupFileError (a damaged file), ToolFailed (pg_restore)."""
    with tempfile.TemporaryDirectory(prefix="opsos-restore-") as work:
        unpacked = Path(work)
        manifest = archive.unpack(file, unpacked)
        _check_schema(manifest)
        key = _audit_key(settings, unpacked, manifest)
        # Checked before anything is written: with another key the restored chain could never be proved.
        signing = bytes.fromhex(key.decode().strip()) if key is not None else anchors.book(settings).key
        if manifest.head is not None and not anchors.signed(signing, manifest.head):
            raise RestoreRefused("the backup's head is not signed with this audit key: set the key it was made "
                                 "with (OPSOS_AUDIT_KEY, or the audit.key it carries)")
        anchor_file = settings.audit_anchor_file
        if anchor_file.exists() and anchor_file.read_text().strip():
            raise RestoreRefused(f"{anchor_file} already holds anchors; restore into an empty data folder")
        with psycopg.connect(database_url, row_factory=dict_row, autocommit=True) as conn:
            if conn.execute(HAS_SCHEMA).fetchone()["found"]:
                raise RestoreRefused("the database already holds opsos's tables; restore into an empty one")
            postgres.restore(database_url, unpacked / archive.DUMP)
            if key is not None:
                _write_private(settings.audit_key_file, key)
            anchor_file.parent.mkdir(parents=True, exist_ok=True)
            anchor_file.write_bytes((unpacked / archive.ANCHORS).read_bytes())
            # A backup made by an older opsos is brought up to this one's schema first: migrations add no events.
            applied = migrate(conn)
            book = anchors.book(settings)
            problem = _head_found(conn, book, manifest)
            chain = anchors.verify(conn, book, full=True)
            if chain.trusted and not problem:
                with conn.transaction():
                    audit.append(conn, actor="opsos restore", at=now, kind="backup.restored",
                                 payload={"file": file.name, "made_at": manifest.created_at,
                                          "head": manifest.head.event_id if manifest.head else None})
    log.info("backup.restored", file=str(file), head=manifest.head.event_id if manifest.head else None,
             chain_ok=chain.ok, head_found=not problem, migrated=len(applied))
    return Restored(manifest=manifest, chain=chain, head_found=not problem, problem=problem)
