"""The console front end: renders messages as text and turns typed lines into orchestrator calls."""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import psycopg
import structlog
from psycopg_pool import PoolTimeout

from bot.render.console import ConsoleRenderer
from orchestrator import Message, MessageKind, Operations, Requester, expire_copies, outbox, prepare

log = structlog.get_logger(__name__)

CHANNEL = "console"


class ConsoleSession:
    """One operator at a terminal. Replies come back in two ways: at once (the ack) and through the outbox."""

    def __init__(self, ops: Operations, *, identity: str, conversation: str = "console:local",
                 write: Callable[[str], None] = print) -> None:
        self.ops = ops
        self.who = Requester(identity=identity, channel=CHANNEL, conversation=conversation, private=True)
        self.write = write
        self.renderer = ConsoleRenderer()
        # The last approval shown, so "approve" alone answers it, as a button under it would.
        self.last_approval: str | None = None
        self.seen: list[Message] = []
        self.last_choices: list[str] = []
        # Approvals whose outcome this terminal already printed (the reply to "approve …", or an earlier edit).
        self.decided: set[str] = set()

    def say(self, text: str) -> Message:
        """Handle one typed line and show the immediate reply."""
        words = text.strip().lower()
        if words in ("approve", "reject", "why") and self.last_approval:
            text = f"{words} {self.last_approval}"
        elif words.isdigit() and self.last_choices and 1 <= int(words) <= len(self.last_choices):
            # A number presses one of the last message's other buttons ("Did you mean …?").
            text = self.last_choices[int(words) - 1].replace(":", " ", 1)
        reply = self.ops.handle_text(self.who, text)
        self.show(reply)
        return reply

    def show(self, message: Message) -> None:
        if message.kind is MessageKind.APPROVAL_REQUEST and message.approval_id:
            self.last_approval = message.approval_id
        if message.actions and not message.approval_id:
            self.last_choices = [action.value for action in message.actions]
        if message.kind is MessageKind.APPROVAL_DECIDED and message.approval_id:
            self.decided.add(message.approval_id)
        self.seen.append(message)
        self.write(self.renderer.render(message=message))

    def deliver_pending(self) -> list[Message]:
        """Consume this conversation's outbox: show each message, then mark it delivered in the same transaction.

        A copy of approval buttons shows as it reads now (see `delivery.prepare`). A terminal cannot change
        what it printed, so an edit prints the outcome line, once: not when this terminal printed it already
        as the reply to the operator's own "approve …".
        """
        shown: list[Message] = []
        now = self.ops.services.now()
        ref = {"console": self.who.conversation}
        with self.ops.pool.connection() as conn, conn.transaction():
            for item in outbox.claim(conn, channel=CHANNEL, conversation=self.who.conversation, now=now):
                ready = prepare(conn, item, now=now)
                if ready.target is None:
                    message = ready.message
                    outbox.mark_delivered(conn, item.id, ref={**ref, "settled": ready.settled} if ready.settled
                                          else ref, token=None)
                else:
                    message = ready.decision or item.message
                    outbox.mark_delivered(conn, item.id, ref=ref, token=None)
                    if ready.skip is not None or item.approval_id in self.decided:
                        continue
                self.show(message)
                shown.append(message)
        return shown

    def wait_for(self, kind: MessageKind, *, timeout: float = 60.0, listener: OutboxListener | None = None) -> Message:
        """Deliver outbox messages until one of `kind` arrives (for the demo and tests)."""
        listen = listener or OutboxListener(self.ops.services.stores.database_url)
        # A real wait, not the operator's time: the injected clock may stand still in a test.
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                for message in self.deliver_pending():
                    if message.kind is kind:
                        return message
                listen.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        finally:
            if listener is None:
                listen.close()
        raise TimeoutError(f"no {kind.value} message within {timeout:.0f}s")


class OutboxListener:
    """LISTEN on the outbox channel so the console wakes the moment a message is committed."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.conn.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")

    def wait(self, timeout: float) -> None:
        # Notifications only hint that something is there; the outbox table is always re-read.
        for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            pass

    def close(self) -> None:
        self.conn.close()


class OutboxPrinter(threading.Thread):
    """Background delivery for the interactive chat: prints outbox messages while the operator types."""

    RETRY_SECONDS = 2.0

    def __init__(self, session: ConsoleSession) -> None:
        super().__init__(daemon=True, name="console-outbox")
        self.session = session
        self.stopped = threading.Event()

    def run(self) -> None:
        listener: OutboxListener | None = None
        try:
            while not self.stopped.is_set():
                try:
                    if listener is None:
                        listener = OutboxListener(self.session.ops.services.stores.database_url)
                    # With no platform configured no delivery loop runs, so the console lapses expired approvals.
                    expire_copies(self.session.ops.pool, now=self.session.ops.services.now())
                    self.session.deliver_pending()
                    listener.wait(0.5)
                except (psycopg.Error, PoolTimeout) as error:
                    # The database restarting must not silently end the printing: the rows wait in the outbox,
                    # so say so once per outage, listen again and carry on.
                    log.warning("console.outbox_unreachable", error=str(error))
                    if listener is not None:
                        with contextlib.suppress(psycopg.Error):
                            listener.close()
                        listener = None
                    self.stopped.wait(self.RETRY_SECONDS)
        finally:
            if listener is not None:
                listener.close()

    def stop(self) -> None:
        self.stopped.set()


__all__ = ["CHANNEL", "ConsoleRenderer", "ConsoleSession", "OutboxListener", "OutboxPrinter"]
