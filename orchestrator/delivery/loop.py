"""The delivery loop of a web or worker process: LISTEN for new outbox rows, poll for retries coming due."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime

import psycopg
import structlog
from psycopg_pool import ConnectionPool

from orchestrator import outbox
from orchestrator.delivery.dead import MAX_ATTEMPTS
from orchestrator.delivery.send import deliver_all
from orchestrator.delivery.senders import Sender

log = structlog.get_logger(__name__)


class DeliveryLoop:
    """Delivers as soon as a row is committed (LISTEN on the outbox channel), and polls for retries coming due.

    A row failing `max_attempts` times is dead, and the operator told where `home` (OPSOS_HOME_CHANNEL) says.
    """

    def __init__(self, pool: ConnectionPool, database_url: str, *, clock: Callable[[], datetime],
                 poll_seconds: float = 2.0, registry: Mapping[str, Sender] | None = None,
                 max_attempts: int = MAX_ATTEMPTS, home: str | None = None) -> None:
        self.pool = pool
        self.database_url = database_url
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.registry = registry
        self.max_attempts = max_attempts
        self.home = home

    async def run(self, stop: asyncio.Event) -> None:
        listener: psycopg.AsyncConnection | None = None
        try:
            while not stop.is_set():
                if listener is None:
                    # Listening again after the connection was lost (a database restart, a pooler): until it
                    # works, the loop polls, so a row is late by at most one poll, never missed.
                    listener = await self._listen()
                try:
                    await deliver_all(self.pool, now=self.clock(), registry=self.registry, clock=self.clock,
                                      max_attempts=self.max_attempts, home=self.home)
                except (psycopg.Error, OSError) as error:
                    # The database may be restarting; the rows are safe in it, so wait and try again.
                    log.warning("outbox.delivery_pass_failed", error=str(error))
                listener = await self._wait(listener, stop)
        finally:
            if listener is not None:
                await listener.close()

    async def _listen(self) -> psycopg.AsyncConnection | None:
        try:
            conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
            await conn.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
        except psycopg.Error as error:
            log.warning("outbox.listen_failed", error=str(error))
            return None
        return conn

    async def _wait(self, listener: psycopg.AsyncConnection | None,
                    stop: asyncio.Event) -> psycopg.AsyncConnection | None:
        """Wait for a notification, the poll timeout or shutdown; returns the listener, or None once it broke."""
        # A notification only hints that rows exist; the table is re-read each pass either way.
        if listener is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_seconds)
            return None
        notified = asyncio.ensure_future(self._notified(listener))
        stopping = asyncio.ensure_future(stop.wait())
        # Whichever comes first: a notification, the poll timeout (inside notifies), or shutdown.
        _, pending = await asyncio.wait({notified, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if notified.done() and not notified.cancelled() and notified.result() is False:
            # A dead listener answers at once, every time: waiting on it again would spin the loop.
            with contextlib.suppress(psycopg.Error):
                await listener.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_seconds)
            return None
        return listener

    async def _notified(self, listener: psycopg.AsyncConnection) -> bool:
        """True after a notification or the poll timeout; False when the listening connection is gone."""
        try:
            async for _ in listener.notifies(timeout=self.poll_seconds, stop_after=1):
                pass
        except psycopg.Error as error:
            log.warning("outbox.listen_lost", error=str(error))
            return False
        return True
