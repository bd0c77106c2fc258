"""Worker processes started beside the console and the demo, on the same servers."""
from __future__ import annotations

import signal
import subprocess
import sys

from orchestrator import Settings, Stores


def start_worker(stores: Stores, settings: Settings, *, log_level: str = "warning") -> subprocess.Popen:
    """A real `opsos worker` process: it takes jobs from RQ exactly as a deployed worker would."""
    env = {**stores.child_env(), "OPSOS_DATA_DIR": str(settings.data_dir),
           "OPSOS_EMAIL_DIR": str(settings.outbox_email_dir)}
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "--log-level", log_level, "worker"], env=env)


def stop_worker(process: subprocess.Popen, *, timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    # SIGTERM is RQ's warm shutdown: the worker finishes its current job, then exits.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
