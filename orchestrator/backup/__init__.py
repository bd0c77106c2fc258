"""Backups of opsos's records: `make` a consistent snapshot with the audit head signed, `restore` it and prove it."""
from orchestrator.backup.archive import BackupFileError, Manifest
from orchestrator.backup.postgres import ToolFailed
from orchestrator.backup.restoring import Restored, RestoreRefused, restore
from orchestrator.backup.snapshot import BackupMade, default_path, make, prune

__all__ = ["BackupFileError", "BackupMade", "Manifest", "RestoreRefused", "Restored", "ToolFailed", "default_path",
           "make", "prune", "restore"]
