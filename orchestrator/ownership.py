"""Run ownership: the advisory lock a worker holds while it advances a run, and the check that it still does.

The lock is a session advisory lock on a connection of its own, so PostgreSQL frees it the moment that session
ends: a SIGKILLed worker's run is free at once. The same fact is the danger: a session can end under a live
worker (`pg_terminate_backend`, a failover, a pooler or proxy closing it), and then recovery sees a free run and
a second worker takes it. So the holder checks, on the lock's own connection, that PostgreSQL still counts the
lock as its own before every outside action (`RunLock.check`, the connectors' fence); a dead connection, or
one that does not answer within a short statement timeout, counts as lost.

A check on the lock's connection cannot guard a write on another connection: the lock may be lost between the
two. So the run's row names its owner too (`runs.owner`, the hold's token), set by each new hold on the lock's
own session while it holds the lock, and every transaction the engine commits for a run first locks the row and
compares (`RunLock.own_row`): a worker whose run was taken over writes nothing, whenever it lost the lock.
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
TAKE = "UPDATE runs SET owner = %s WHERE id = %s"
# The take may wait for the run's row behind a transaction of the hold it replaces or an operator's click: longer
# than a check may, since it is made once per hold and before anything else.
TAKE_TIMEOUT_MS = 30000
OWNER_FOR_UPDATE = "SELECT owner FROM runs WHERE id = %s FOR UPDATE"


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

    def take(self) -> None:
        """Name this hold the run's owner, on the lock's own session.

        The concurrency rule: a statement on the session that holds the lock commits only while that session
        lives, so holding the lock; a later hold can take the lock only after this session ended. So takes
        commit in the order the lock was held, and the row names the newest holder, never a stale one.
        """
        with self.conn.transaction():
            self.conn.execute(f"SET LOCAL statement_timeout = {int(TAKE_TIMEOUT_MS)}")
            self.conn.execute(TAKE, (self.owner, self.run_id))

    def own_row(self, conn: psycopg.Connection) -> None:
        """Lock the run's row for `conn`'s transaction, and raise OwnershipLost if it names another hold.

        Called first in every transaction the engine commits for the run, so the row lock is taken before the
        audit chain's (the repo's lock order) and a worker whose run was taken over rolls back, writing nothing.
        """
        row = conn.execute(OWNER_FOR_UPDATE, (self.run_id,)).fetchone()
        owner = None if row is None else (row["owner"] if isinstance(row, dict) else row[0])
        if owner != self.owner:
            raise OwnershipLost(self.run_id, "the run names another worker's hold as its owner")


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
        if not try_lock_run(conn, run_id):
            yield None
            return
        lock = RunLock(conn, run_id)
        lock.take()
        yield lock
