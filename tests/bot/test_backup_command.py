"""`opsos backup` and `opsos restore` on the embedded stack: the data folder lost, a new one restored from the
file, `opsos audit verify` passing there, and no server left running by either command."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from tests.bot.embedded import opsos, postgres_pid, redis_pid


@pytest.fixture
def folders(test_root: Path):
    root = Path(tempfile.mkdtemp(prefix="backup-", dir=test_root))
    made = [root / "old", root / "new"]
    for folder in made:
        folder.mkdir()
    # Readable by others: as root, pgserver runs PostgreSQL as its own user, which must reach the folders.
    for path in (root, *made):
        path.chmod(0o755)
    yield made
    for folder in made:
        for pid, stop in ((postgres_pid(folder), signal.SIGINT), (redis_pid(folder), signal.SIGTERM)):
            if pid is not None:
                os.kill(pid, stop)


def test_a_backup_restored_into_a_new_data_folder_verifies_there(folders) -> None:
    old, new = folders
    first = opsos(old, "backup", str(old.parent / "first.tar"))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "no audit event yet" in first.stdout
    # The first backup's own audit event is the head the second one signs.
    second = opsos(old, "backup", str(old.parent / "second.tar"))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "audit head #1 signed" in second.stdout
    assert postgres_pid(old) is None and redis_pid(old) is None
    shutil.rmtree(old)

    refused = opsos(new, "restore", str(new.parent / "missing.tar"))
    assert refused.returncode == 2 and "is not a file" in refused.stdout
    restored = opsos(new, "restore", str(new.parent / "second.tar"))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "the signed head #1 found at the end" in restored.stdout
    verified = opsos(new, "audit", "verify", "--full")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    again = opsos(new, "restore", str(new.parent / "second.tar"))
    assert again.returncode == 2 and "already holds" in again.stdout
    assert postgres_pid(new) is None and redis_pid(new) is None
