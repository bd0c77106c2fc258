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
from orchestrator.delivery.send import deliver_all
from orchestrator.delivery.senders import Sender

log = structlog.get_logger(__name__)


class DeliveryLoop:
    """Delivers as soon as a row is committed (LISTEN on the outbox channel), and polls for retries coming due."""

    def __init__(self, pool: ConnectionPool, database_url: str, *, clock: Callable[[], datetime],
                 poll_seconds: float = 2.0, registry: Mapping[str, Sender] | None = None) -> None:
        self.pool = pool
        self.database_url = database_url
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.registry = registry

    async def run(self, stop: asyncio.Event) -> None:
        listener = await self._listen()
        try:
            while not stop.is_set():
                try:
                    await deliver_all(self.pool, now=self.clock(), registry=self.registry, clock=self.clock)
                except (psycopg.Error, OSError) as error:
                    # The database may be restarting; the rows are safe in it, so wait and try again.
                    log.warning("outbox.delivery_pass_failed", error=str(error))
                await self._wait(listener, stop)
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

    async def _wait(self, listener: psycopg.AsyncConnection | None, stop: asyncio.Event) -> None:
        # A notification only hints that rows exist; the table is re-read each pass either way.
        if listener is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_seconds)
            return
        notified = asyncio.ensure_future(self._notified(listener))
        stopping = asyncio.ensure_future(stop.wait())
        # Whichever comes first: a notification, the poll timeout (inside notifies), or shutdown.
        _, pending = await asyncio.wait({notified, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _notified(self, listener: psycopg.AsyncConnection) -> None:
        with contextlib.suppress(psycopg.Error):
            async for _ in listener.notifies(timeout=self.poll_seconds, stop_after=1):
                pass
