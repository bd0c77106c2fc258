"""The backup file: one tar of the database dump, the audit log's signed head, the anchor file and (when opsos
made it) the audit key, with a manifest naming each member's sha256.

Written to a hidden name beside the destination, fsynced, then renamed, so a backup that died half-way never
sits where a restore would find it. Mode 0600: it holds every record of the business and can hold the key.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from orchestrator.anchors import Anchor

FORMAT = 1
MANIFEST = "manifest.json"
DUMP = "database.pgdump"
HEAD = "audit-head.json"
ANCHORS = "audit-anchors.jsonl"
KEY = "audit.key"
CHUNK = 1 << 20


class BackupFileError(ValueError):
    """A file that is not an opsos backup, or one damaged since it was written."""


class Manifest(BaseModel):
    format: int = FORMAT
    created_at: datetime
    # (component, version) of every migration the dumped database had: a restore refuses a newer schema.
    schemas: dict[str, int]
    # The last audit event in the dump, signed with the audit key: what the restore must find again.
    head: Anchor | None
    # Whether the chain verified when the backup was made: a head of None is then an empty log, not a broken one.
    chain_ok: bool
    key_included: bool
    sha256: dict[str, str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def write(dest: Path, manifest: Manifest, members: dict[str, Path]) -> int:
    """Write the archive to `dest` all at once (see the module's docstring); its size in bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    manifest_file = partial.with_name(f".{dest.name}.manifest")
    manifest_file.write_text(manifest.model_dump_json(indent=2))
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            with tarfile.open(fileobj=out, mode="w") as tar:
                tar.add(manifest_file, arcname=MANIFEST)
                for name, path in members.items():
                    tar.add(path, arcname=name)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, dest)
    finally:
        manifest_file.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    folder = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return dest.stat().st_size


def unpack(file: Path, into: Path) -> Manifest:
    """Extract `file` into the folder `into` and check every member against the manifest. Raises BackupFileError."""
    try:
        with tarfile.open(file, mode="r:") as tar:
            # The "data" filter refuses absolute paths, links out of the folder and device files.
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise BackupFileError(f"{file} is not a readable opsos backup: {error}") from error
    try:
        manifest = Manifest.model_validate_json((into / MANIFEST).read_text())
    except (OSError, ValidationError) as error:
        raise BackupFileError(f"{file} has no valid manifest: {error}") from error
    if manifest.format != FORMAT:
        raise BackupFileError(f"{file} is backup format {manifest.format}; this opsos reads format {FORMAT}")
    for name, expected in manifest.sha256.items():
        member = into / name
        if not member.is_file():
            raise BackupFileError(f"{file} lacks {name}, which its manifest lists")
        if sha256_of(member) != expected:
            raise BackupFileError(f"{file}: {name} does not match its checksum; the file was damaged or changed")
    return manifest
