"""Run ownership: the advisory lock a worker holds while it advances a run, and the check that it still does.

The lock is a session advisory lock on a connection of its own, so PostgreSQL frees it the moment that session
ends: a SIGKILLed worker's run is free at once. The same fact is the danger: a session can end under a live
worker (`pg_terminate_backend`, a failover, a pooler or proxy closing it), and then recovery sees a free run and
a second worker takes it. So the holder checks, on the lock's own connection, that PostgreSQL still counts the
lock as its own before every outside action (`RunLock.check`, the connectors' fence); a dead connection, or
one that does not answer within a short statement timeout, counts as lost.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from orchestrator.errors import OwnershipLost

RUN_LOCK_CLASS = 42
TRY_LOCK = "SELECT pg_try_advisory_lock(%s, %s::int) AS ok"
UNLOCK = "SELECT pg_advisory_unlock(%s, %s::int)"
# A two-int advisory lock shows in pg_locks as classid = first key, objid = second, objsubid = 2.
STILL_HELD = """
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s
               AND objsubid = 2 AND granted AND pid = pg_backend_pid())
"""
# Long enough for a busy server to answer, short enough that an outside action waits little for it.
CHECK_TIMEOUT_MS = 2000


def try_lock_run(conn: psycopg.Connection, run_id: int) -> bool:
    return bool(conn.execute(TRY_LOCK, (RUN_LOCK_CLASS, run_id)).fetchone()[0])


def unlock_run(conn: psycopg.Connection, run_id: int) -> None:
    conn.execute(UNLOCK, (RUN_LOCK_CLASS, run_id))


class RunLock:
    """A held run lock: the connectors' fence (`connectors.Fence`) for the run while its worker advances it."""

    def __init__(self, conn: psycopg.Connection, run_id: int) -> None:
        self.conn = conn
        self.run_id = run_id
        # New with every hold: a claim this hold made is its own to retry; one a lost hold made is not.
        self.owner = f"run:{run_id}:{uuid.uuid4().hex}"

    def check(self) -> None:
        """Return if this session still holds the run's lock; raise OwnershipLost if not (or if unsure)."""
        try:
            held = bool(self.conn.execute(STILL_HELD, (RUN_LOCK_CLASS, self.run_id)).fetchone()[0])
        except psycopg.Error as error:
            raise OwnershipLost(self.run_id, f"its lock connection failed ({error})") from error
        if not held:
            raise OwnershipLost(self.run_id, "PostgreSQL no longer counts its lock as held")


@contextmanager
def hold_run(database_url: str, run_id: int) -> Iterator[RunLock | None]:
    """Hold the run's lock for the block, on a connection of its own; None if another worker holds it.

    The concurrency rule: one session at a time holds a run's lock, and only its holder advances the run.
    Closing the connection on the way out releases the lock (or PostgreSQL does, when the process dies).
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        # A SET, not a startup `options`: that would replace any options the DATABASE_URL carries, and some
        # poolers refuse startup options altogether.
        conn.execute(f"SET statement_timeout = {int(CHECK_TIMEOUT_MS)}")
        yield RunLock(conn, run_id) if try_lock_run(conn, run_id) else None
