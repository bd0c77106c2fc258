"""`opsos up`'s supervisor: every role of opsos as a child process on one machine, each restarted with backoff
when it dies, all stopped together.

The parent opens the stores first (so the embedded PostgreSQL and Redis start once and migrations run once) and
hands the children their URLs; the embedded servers then stop with the parent, the last process using them. A
child that ends with exit code 2 was refused its configuration (a wrong token): restarting it cannot help, so
everything stops and `opsos up` says which one. Any other end is a crash, restarted after 1, 2, 4 … 60 seconds;
a child that ran for a minute starts the count again. SIGTERM or Ctrl-C sends SIGTERM to every child (a worker
finishes its job, a step it cannot finish is left for recovery), waits `grace` seconds, then kills what is left.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

CONFIGURATION_REFUSED = 2
STABLE_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class Role:
    name: str
    args: tuple[str, ...]


@dataclass
class Child:
    role: Role
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0


def backoff(failures: int) -> float:
    """Seconds before the restart after `failures` quick deaths in a row (pure)."""
    return min(MAX_BACKOFF_SECONDS, 2.0 ** max(0, failures - 1))


class Supervisor:
    def __init__(self, roles: list[Role], *, env: dict[str, str], grace: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.children = [Child(role) for role in roles]
        self.env = env
        self.grace = grace
        self.clock = clock
        self.stopping = threading.Event()
        self.refused: Child | None = None

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen([sys.executable, "-m", "bot.cli", *child.role.args], env=self.env)
        child.started_at = self.clock()
        child.restart_at = None
        log.info("up.child_started", role=child.role.name, pid=child.process.pid, restarts=child.restarts)

    def _ended(self, child: Child, code: int) -> None:
        now = self.clock()
        if code == CONFIGURATION_REFUSED:
            log.error("up.child_refused", role=child.role.name, code=code)
            self.refused = child
            self.stopping.set()
            return
        child.failures = 1 if now - child.started_at >= STABLE_SECONDS else child.failures + 1
        wait = backoff(child.failures)
        child.restart_at = now + wait
        child.restarts += 1
        log.warning("up.child_exited", role=child.role.name, code=code, restart_in_seconds=wait)

    def step(self) -> None:
        """Look at every child once: note the dead, start those whose wait is over."""
        for child in self.children:
            if child.process is not None:
                code = child.process.poll()
                if code is not None:
                    child.process = None
                    self._ended(child, code)
            if self.stopping.is_set():
                return
            if child.process is None and (child.restart_at is None or self.clock() >= child.restart_at):
                self._start(child)

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def run(self) -> int:
        """Supervise until told to stop; 0, or 2 when a child was refused its configuration."""
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not self.stopping.is_set():
                self.step()
                self.stopping.wait(0.5)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return CONFIGURATION_REFUSED if self.refused is not None else 0

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        log.info("up.stopping", children=[c.role.name for c in running])
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = self.clock() + self.grace
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                log.warning("up.child_killed", role=child.role.name, after_seconds=self.grace)
                child.process.kill()
                child.process.wait()
        log.info("up.stopped")
