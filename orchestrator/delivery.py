"""Outbox delivery to chat platforms: a channel → sender registry and the loop that sends due rows.

A row is leased (claimed with SKIP LOCKED, its next attempt pushed past the lease) in one short
transaction, sent outside any transaction, then settled: delivered with the platform's reference
(so a later chat.update / editMessageText finds the message) or failed with backoff. A deliverer
that dies mid-send leaves its rows to come due again when the lease ends: at least once, never lost.
A platform's rate limit (a sender raises RetryLater) defers the channel's rows as long as it asked, no attempt
counted: a message is never given up on because Slack or Telegram was busy.

Copies of approval buttons are composed here, at the moment they go out: a copy (an approval request,
a digest) is sent with the buttons of approvals that already left pending taken off and their outcome
under it, and an edit re-renders its copy the same way from what is true when it is sent. Both read
the same record, so however a copy gets there (sent late, edited once or twice), it reads the same.
An edit whose message is gone from its platform (the sender raises CopyGone) is dropped, not retried.
The senders live in `bot/`; the processes that own them register them here at start.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg
import structlog
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from orchestrator import approvals, outbox, words
from orchestrator.errors import OpsError
from orchestrator.messages import Message
from orchestrator.outbox import OutboxItem

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=60)
BATCH = 20
DEFAULT_HOME = ("console", "console:local")


class Sender(Protocol):
    """Sends one outbox row to its platform; returns the platform's reference to what it posted.

    Raises RetryLater when the platform rate-limits it; any other exception is a failed attempt.
    """

    async def send(self, *, item: OutboxItem) -> dict[str, Any]: ...

    async def edit(self, *, item: OutboxItem, target: OutboxItem, message: Message) -> dict[str, Any]:
        """Make the delivered copy `target` (its `delivery_ref` says where it lives) read `message` instead.

        `item` is the edit row; its message is the decision that caused it. Raises CopyGone when the copy no
        longer exists on the platform, RetryLater when rate-limited; any other exception is a failed attempt.
        """
        ...


class RetryLater(OpsError):
    """A sender's platform is rate-limiting us (HTTP 429): send again no earlier than `seconds` from now.

    The sender raises it instead of sleeping, so one busy platform never stalls the delivery pass.
    """

    def __init__(self, seconds: float, reason: str = "rate limited") -> None:
        super().__init__(f"{reason}; retry after {seconds:g} s")
        self.seconds = seconds
        self.reason = reason


class CopyGone(OpsError):
    """The message an edit was for no longer exists where it was (deleted, its channel or chat gone).

    Nothing is left to change, now or later: the edit is settled as dropped, never retried.
    """


_senders: dict[str, Sender] = {}


def register(channel: str, sender: Sender) -> None:
    _senders[channel] = sender


def unregister(channel: str) -> None:
    _senders.pop(channel, None)


def senders() -> dict[str, Sender]:
    return dict(_senders)


@dataclass
class Outcome:
    delivered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    # Put off because the platform said 429: the rate-limited row and the rows the pass then left untried.
    deferred: list[int] = field(default_factory=list)
    # Edits whose message was gone from its platform: settled without a change, never tried again.
    dropped: list[int] = field(default_factory=list)


class Ready(BaseModel):
    """One claimed row made ready to go: what it shows now, and for an edit the copy it changes."""

    item: OutboxItem
    message: Message
    target: OutboxItem | None = None
    # The approvals whose outcome `message` shows, kept in the delivery reference so a later edit that would
    # show nothing new is settled without a call.
    settled: list[str] = Field(default_factory=list)
    # Why nothing needs to go out (the copy already shows this outcome, or there is no copy to change).
    skip: str | None = None


def as_it_reads(message: Message, decisions: list[Message]) -> Message:
    """A copy of approval buttons as it reads once `decisions`' approvals left pending (pure).

    The same content, the buttons of those approvals gone (others stay live: a digest carries several), and
    one outcome line for each under it.
    """
    if not decisions:
        return message
    gone = {decision.approval_id for decision in decisions}
    live = [action for action in message.actions if outbox.approval_of(action.value) not in gone]
    return message.model_copy(update={"actions": live, "sections": [*message.sections, words.outcome(decisions)]})


def _decisions(conn: psycopg.Connection, copy: OutboxItem, now: datetime) -> list[Message]:
    """The outcomes a copy shows at `now`, in the order of its buttons.

    An approval's queued edit says how it ended as recorded when it left pending, so a copy keeps telling
    the same end (say, expired) even if the record later reads otherwise (void, when the run asked anew).
    Approvals without an edit for this copy (it was composed before their end and committed after) are
    read from their record.
    """
    recorded = {edit.approval_id: edit.message for edit in outbox.edits(conn, copy.id) if edit.approval_id}
    current = approvals.by_ids(conn, [a for a in copy.approval_buttons if a not in recorded])
    decisions = []
    for approval_id in copy.approval_buttons:
        if approval_id in recorded:
            decisions.append(recorded[approval_id])
        elif approval_id in current and (shown := approvals.shown_as(current[approval_id], now)) is not None:
            decisions.append(words.approval_decided(shown))
    return decisions


def prepare(conn: psycopg.Connection, item: OutboxItem, *, now: datetime) -> Ready:
    """What a claimed row shows when it goes out at `now`: any post as queued, a copy of approval buttons
    and an edit as the copy reads now (see `as_it_reads`). Reads only; the caller sends and settles."""
    if item.edit_of is None:
        if not item.approval_buttons:
            return Ready(item=item, message=item.message)
        decisions = _decisions(conn, item, now)
        return Ready(item=item, message=as_it_reads(item.message, decisions),
                     settled=[decision.approval_id for decision in decisions if decision.approval_id])
    target = outbox.get(conn, item.edit_of)
    if not target.delivery_ref:
        return Ready(item=item, message=item.message, target=target, skip="the copy has no platform reference")
    shown = set(target.delivery_ref.get("settled", []))
    for earlier in outbox.edits(conn, target.id):
        if earlier.state == "delivered" and earlier.delivery_ref:
            shown.update(earlier.delivery_ref.get("settled", []))
    if item.approval_id in shown:
        return Ready(item=item, message=item.message, target=target, skip="the copy already shows this outcome")
    decisions = _decisions(conn, target, now)
    return Ready(item=item, message=as_it_reads(target.message, decisions), target=target,
                 settled=[decision.approval_id for decision in decisions if decision.approval_id])


def _lease(pool: ConnectionPool, channel: str, now: datetime, lease: timedelta, limit: int,
           approval_id: str | None) -> list[OutboxItem]:
    # One transaction: the row locks of claim() last only until the lease is written, not through the send.
    with pool.connection() as conn, conn.transaction():
        items = outbox.claim(conn, channel=channel, now=now, limit=limit, approval_id=approval_id)
        outbox.lease(conn, [item.id for item in items], until=now + lease)
    return items


def _prepare(pool: ConnectionPool, item: OutboxItem, now: datetime) -> Ready:
    with pool.connection() as conn:
        return prepare(conn, item, now=now)


def _delivered(pool: ConnectionPool, item_id: int, ref: dict[str, Any]) -> None:
    with pool.connection() as conn, conn.transaction():
        outbox.mark_delivered(conn, item_id, ref=ref)


def _dropped(pool: ConnectionPool, item_id: int, reason: str) -> None:
    with pool.connection() as conn, conn.transaction():
        outbox.mark_dropped(conn, item_id, reason=reason)


def _failed(pool: ConnectionPool, item: OutboxItem, error: str, now: datetime, held: list[int]) -> None:
    with pool.connection() as conn, conn.transaction():
        outbox.mark_failed(conn, item.id, error=error, attempts=item.attempts, now=now)
        # Later messages to the same conversation wait behind the failed one, so the operator reads them in order.
        outbox.lease(conn, held, until=now + outbox.retry_delay(item.attempts + 1) + timedelta(milliseconds=1))


def _deferred(pool: ConnectionPool, channel: str, item: OutboxItem, reason: str, until: datetime,
              untried: list[int]) -> None:
    with pool.connection() as conn, conn.transaction():
        outbox.mark_deferred(conn, item.id, reason=reason, until=until)
        # Our own lease on the untried rows ends when the platform's wait does, not a LEASE later.
        outbox.lease(conn, untried, until=until)
        # A 429 does not say whether the limit was one conversation's or our whole token's (Slack counts per
        # method and workspace, chat.postMessage also per channel; Telegram per chat and per bot), so every
        # pending row of the channel waits too, also rows beyond this batch and other deliverers' rows. The
        # operator's conversations are few, so the cost is a short wait for the others; the gain is no more
        # 429s for Slack to count against us or for Telegram to answer with a longer flood wait.
        outbox.hold_channel(conn, channel=channel, until=until)


async def deliver_due(
    pool: ConnectionPool, *, channel: str, sender: Sender, now: datetime, lease: timedelta = LEASE,
    limit: int = BATCH, approval_id: str | None = None,
) -> Outcome:
    """Send every due row of `channel` once. A failed send stays pending with a longer wait; nothing raises.

    A rate limit (RetryLater) ends the pass for the channel: the row, and every other pending row of the
    channel, waits as long as the platform asked, without counting an attempt. An edit of a message gone
    from the platform (CopyGone) is dropped. With `approval_id`, only the edits that approval's end caused:
    what a click on a button sends at once, through this same path, so the loop finds them settled.
    """
    items = await asyncio.to_thread(_lease, pool, channel, now, lease, limit, approval_id)
    # `now` may be a test's clock; the real time spent sending is added to it so a wait starts at the 429.
    started = time.monotonic()
    outcome = Outcome()
    blocked: set[str] = set()
    for index, item in enumerate(items):
        edit = item.edit_of is not None
        # Edits neither wait behind a conversation's failed post nor hold its later posts: order matters
        # between the messages the operator reads one after the other, not between a message and its edit.
        if not edit and item.conversation in blocked:
            continue
        try:
            ready = await _ready(pool, item, now)
            if ready.skip is not None:
                await asyncio.to_thread(_delivered, pool, item.id, {"skipped": ready.skip})
                log.info("outbox.edit_skipped", outbox_id=item.id, channel=channel, reason=ready.skip)
                outcome.delivered.append(item.id)
                continue
            if ready.target is not None:
                ref = await sender.edit(item=item, target=ready.target, message=ready.message)
            else:
                ref = await sender.send(item=item.model_copy(update={"message": ready.message}))
        except RetryLater as busy:
            until = now + timedelta(seconds=time.monotonic() - started) + outbox.rate_limit_delay(busy.seconds)
            # Rows of conversations blocked earlier in this pass keep their backoff (hold_channel only lengthens).
            untried = [later.id for later in items[index + 1:]
                       if later.edit_of is not None or later.conversation not in blocked]
            await asyncio.to_thread(_deferred, pool, channel, item, f"{type(busy).__name__}: {busy}", until, untried)
            log.warning("outbox.rate_limited", outbox_id=item.id, channel=channel, retry_after=busy.seconds,
                        until=until.isoformat(), deferred=len(untried) + 1)
            outcome.deferred.extend([item.id, *untried])
            break
        except CopyGone as gone:
            await asyncio.to_thread(_dropped, pool, item.id, f"{type(gone).__name__}: {gone}")
            log.warning("outbox.edit_dropped", outbox_id=item.id, channel=channel, edit_of=item.edit_of,
                        approval=item.approval_id, reason=str(gone))
            outcome.dropped.append(item.id)
            continue
        except Exception as error:  # any platform failure: the row is kept and retried, never dropped
            held = [] if edit else [later.id for later in items[index + 1:]
                                    if later.conversation == item.conversation and later.edit_of is None]
            if not edit:
                blocked.add(item.conversation)
            await asyncio.to_thread(_failed, pool, item, f"{type(error).__name__}: {error}", now, held)
            log.warning("outbox.delivery_failed", outbox_id=item.id, channel=channel, attempts=item.attempts + 1,
                        error=str(error))
            outcome.failed.append(item.id)
            continue
        if ready.settled:
            ref = {**ref, "settled": ready.settled}
        await asyncio.to_thread(_delivered, pool, item.id, ref)
        outcome.delivered.append(item.id)
    return outcome


async def _ready(pool: ConnectionPool, item: OutboxItem, now: datetime) -> Ready:
    # Most rows carry no approval buttons and are no edit: they go as queued, without a database read.
    if item.edit_of is None and not item.approval_buttons:
        return Ready(item=item, message=item.message)
    return await asyncio.to_thread(_prepare, pool, item, now)


def expire_copies(pool: ConnectionPool, *, now: datetime) -> list[str]:
    """Queue the edits that show expired every copy of an approval past its time; returns those approvals."""
    with pool.connection() as conn, conn.transaction():
        lapsed = approvals.lapse(conn, now=now)
    if lapsed:
        log.info("approvals.lapsed", approvals=[approval.id for approval in lapsed])
    return [approval.id for approval in lapsed]


async def deliver_all(
    pool: ConnectionPool, *, now: datetime, registry: Mapping[str, Sender] | None = None
) -> dict[str, Outcome]:
    """One pass: the copies of approvals whose time ran out are queued their edits, then every registered
    channel is sent its due rows, those edits included."""
    # Here, because every process that delivers to a platform runs this pass every few seconds, so a copy
    # loses its buttons within a poll of its approval expiring, with no scheduler slot of its own.
    await asyncio.to_thread(expire_copies, pool, now=now)
    chosen = _senders if registry is None else registry
    return {channel: await deliver_due(pool, channel=channel, sender=sender, now=now)
            for channel, sender in list(chosen.items())}


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
                    await deliver_all(self.pool, now=self.clock(), registry=self.registry)
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


def home_address(setting: str | None) -> tuple[str, str]:
    """The operator's chosen place for scheduled items, `channel:conversation` (e.g. `slack:C123`, `telegram:42`)."""
    if not setting or ":" not in setting:
        return DEFAULT_HOME
    channel, conversation = setting.split(":", 1)
    return channel, conversation


def post_scheduled(conn: psycopg.Connection, *, home: str | None, message: Message,
                   dedupe_key: str | None = None) -> int | None:
    """Queue a message nobody asked for just now (digest, budget alert) to the home channel, in the caller's tx."""
    channel, conversation = home_address(home)
    return outbox.post(conn, channel=channel, conversation=conversation, message=message, dedupe_key=dedupe_key)


__all__ = ["CopyGone", "DeliveryLoop", "Outcome", "Ready", "RetryLater", "Sender", "as_it_reads", "deliver_all",
           "deliver_due", "expire_copies", "home_address", "post_scheduled", "prepare", "register", "senders",
           "unregister"]
