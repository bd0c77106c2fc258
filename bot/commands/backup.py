"""`opsos backup [DEST]` and `opsos restore FILE`: a consistent snapshot of the records with the audit head
signed, and its return into an empty data folder, proved by the audit chain."""
from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    made = subparsers.add_parser("backup", help="write a backup of the database and the audit log's signed head")
    made.add_argument("dest", nargs="?", type=Path, default=None,
                      help="the backup file (default: OPSOS_BACKUP_DIR/opsos-backup-<time>.tar)")
    made.set_defaults(run=run_backup, default_log_level="warning")
    back = subparsers.add_parser("restore", help="restore a backup into an empty data folder and verify it")
    back.add_argument("file", type=Path, help="a file written by `opsos backup`")
    back.set_defaults(run=run_restore, default_log_level="warning")


def run_backup(args: argparse.Namespace) -> int:
    """Exit 0 when the backup is written with its head signed, 1 when the chain did not verify, 2 when it failed."""
    from orchestrator import Settings, audit, backup, build_services, words

    settings = Settings()
    services = build_services(settings)
    try:
        now = services.now()
        dest = args.dest or backup.default_path(settings, now)
        try:
            made = backup.make(settings, services.stores.database_url, dest=dest, now=now)
        except (backup.ToolFailed, OSError) as error:
            print(f"opsos backup: {error}")
            return 2
        head = made.head.event_id if made.head else None
        with services.stores.pool.connection() as conn, conn.transaction():
            audit.append(conn, actor="opsos backup", at=now, kind="backup.made",
                         payload={"path": str(made.path), "bytes": made.bytes, "head": head,
                                  "chain_ok": made.chain_ok})
    finally:
        services.close()
    print(words.backup_made(str(made.path), made.bytes, head))
    if not made.chain_ok:
        print("the audit chain did not verify, so the head is not signed: run `opsos audit verify`")
        return 1
    return 0


def run_restore(args: argparse.Namespace) -> int:
    """Exit 0 when restored and proved, 1 when restored but not proved, 2 when refused (nothing written)."""
    from orchestrator import OpsError, Settings, backup, open_stores, words

    settings = Settings()
    if not args.file.is_file():
        print(f"opsos restore: {args.file} is not a file")
        return 2
    stores = open_stores(settings, run_migrations=False)
    try:
        restored = backup.restore(settings, stores.database_url, args.file, now=datetime.now(UTC))
    except (OpsError, backup.BackupFileError, backup.ToolFailed) as error:
        print(f"opsos restore: {error}")
        return 2
    finally:
        stores.close()
    head = restored.manifest.head.event_id if restored.manifest.head else None
    print(words.restore_verdict(verified=restored.verified, problem=restored.problem, chain_ok=restored.chain.ok,
                                checked=restored.chain.checked, head=head))
    return 0 if restored.verified else 1
