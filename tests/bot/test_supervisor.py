"""`opsos up`: every role started, a child that dies restarted with backoff, a refused configuration stopping
everything, and SIGTERM leaving no child and no embedded server running."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil

from bot.supervisor import Role, Supervisor, backoff
from tests.bot.embedded import env_for, postgres_pid, redis_pid


def test_backoff_doubles_up_to_a_minute() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4, 7, 8, 20)] == [1, 2, 4, 8, 60, 60, 60]


def test_a_child_that_ends_is_restarted_only_once_its_wait_is_over() -> None:
    now = [0.0]
    supervisor = Supervisor([Role("short", ("--help",))], env=dict(os.environ), clock=lambda: now[0])
    supervisor.step()
    child = supervisor.children[0]
    assert child.process is not None
    child.process.wait(timeout=60)
    supervisor.step()
    assert child.process is None and child.restart_at == 1.0 and child.restarts == 1
    now[0] = 0.5
    supervisor.step()
    assert child.process is None
    now[0] = 1.0
    supervisor.step()
    assert child.process is not None
    child.process.wait(timeout=60)
    now[0] = 1.5
    supervisor.step()
    assert child.restart_at == 1.5 + 2.0, "a second quick death waits twice as long"


def test_a_child_refused_its_configuration_stops_everything_with_exit_code_2() -> None:
    """Restarting a process whose token is wrong cannot help: `opsos up` stops and names it."""
    supervisor = Supervisor([Role("refuser", ("restore", "/no/such/backup.tar"))], env=dict(os.environ), grace=5)
    assert supervisor.run() == 2
    assert supervisor.refused is not None and supervisor.refused.role.name == "refuser"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(parent: psutil.Process) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for child in parent.children():
        try:
            role = child.cmdline()[3]
        except (psutil.Error, IndexError):
            continue
        found.setdefault(role, []).append(child.pid)
    return found


def _wait_for(check, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError("timed out")


def test_up_runs_every_role_restarts_a_killed_worker_and_stops_cleanly(data_dir) -> None:
    up = subprocess.Popen([sys.executable, "-m", "bot.cli", "up", "--workers", "2", "--port", str(_free_port()),
                           "--grace", "20"], env=env_for(data_dir))
    try:
        parent = psutil.Process(up.pid)
        roles = _wait_for(lambda: (r := _children(parent)) and len(r.get("worker", [])) == 2
                          and "serve" in r and "scheduler" in r and r)
        killed = roles["worker"][0]
        os.kill(killed, signal.SIGKILL)
        _wait_for(lambda: (w := _children(parent).get("worker", [])) and len(w) == 2 and killed not in w)
        everyone = [psutil.Process(pid) for pids in _children(parent).values() for pid in pids]
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0
        _, alive = psutil.wait_procs(everyone, timeout=10)
        assert alive == [], "no child outlives opsos up"
        assert postgres_pid(data_dir) is None and redis_pid(data_dir) is None
    finally:
        if up.poll() is None:
            up.kill()
