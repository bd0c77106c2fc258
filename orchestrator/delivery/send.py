"""Sending due outbox rows to a platform: lease, send outside any transaction, settle.

A pass leases due rows (claimed with SKIP LOCKED, their next attempt pushed past the lease, the pass's token
written on them) in one short transaction, then takes each row in turn: it re-confirms its lease on that one
row (still pending, still its token) and extends it, sends outside any transaction, and settles: delivered with
the platform's reference (so a later chat.update / editMessageText finds the message) or failed with backoff.
A row whose lease ran out and another deliverer took (a slow pass: a platform answering slowly) is skipped, and
a settle under a lost lease changes nothing: each row is sent by one deliverer. A deliverer that dies mid-send
leaves its rows to come due again when the lease ends: at least once, never lost. A message sent in several
calls saves each part's reference as it goes, so a retry sends only the parts not yet out.

A platform's rate limit (a sender raises RetryLater) defers the channel's rows as long as it asked, no attempt
counted: a message is never given up on because Slack or Telegram was busy. An edit whose message is gone
from its platform (the sender raises CopyGone) is dropped, not retried. A row whose failures reach
`max_attempts` is dead (see `dead`): kept, audited, announced elsewhere, never retried by itself.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from psycopg_pool import ConnectionPool

from orchestrator import outbox
from orchestrator.delivery.copies import Ready, expire_copies, prepare
from orchestrator.delivery.dead import MAX_ATTEMPTS, bury
from orchestrator.delivery.senders import CopyGone, LeaseLost, Progress, RetryLater, Sender, registered
from orchestrator.outbox import OutboxItem

log = structlog.get_logger(__name__)

# Long enough for one platform call (slack_sdk times out at 30 s, python-telegram-bot at 5 s), which is all a
# confirmed row's lease has to cover: each row, and each part of a long message, extends it anew.
LEASE = timedelta(seconds=60)
BATCH = 20


@dataclass
class Outcome:
    delivered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    # Put off because the platform said 429: the rate-limited row and the rows the pass then left untried.
    deferred: list[int] = field(default_factory=list)
    # Edits whose message was gone from its platform: settled without a change, never tried again.
    dropped: list[int] = field(default_factory=list)
    # Failed once too often: no longer retried until the operator requeues them.
    dead: list[int] = field(default_factory=list)
    # Rows whose lease ran out and another deliverer took: left to it, unchanged by this pass.
    lost: list[int] = field(default_factory=list)


def _lease(pool: ConnectionPool, channel: str, now: datetime, lease: timedelta, limit: int,
           approval_id: str | None, token: str) -> list[OutboxItem]:
    # One transaction: the row locks of claim() last only until the lease is written, not through the send.
    with pool.connection() as conn, conn.transaction():
        items = outbox.claim(conn, channel=channel, now=now, limit=limit, approval_id=approval_id)
        outbox.lease(conn, [item.id for item in items], until=now + lease, token=token)
    return items


def _confirm(pool: ConnectionPool, item_id: int, token: str, until: datetime) -> OutboxItem | None:
    with pool.connection() as conn, conn.transaction():
        return outbox.confirm(conn, item_id, token=token, until=until)


def _save_progress(pool: ConnectionPool, item_id: int, token: str, progress: dict[str, Any],
                   until: datetime) -> bool:
    with pool.connection() as conn, conn.transaction():
        return outbox.save_progress(conn, item_id, token=token, progress=progress, until=until)


def _prepare(pool: ConnectionPool, item: OutboxItem, now: datetime) -> Ready:
    with pool.connection() as conn:
        return prepare(conn, item, now=now)


def _delivered(pool: ConnectionPool, item_id: int, ref: dict[str, Any], token: str) -> bool:
    with pool.connection() as conn, conn.transaction():
        return outbox.mark_delivered(conn, item_id, ref=ref, token=token)


def _dropped(pool: ConnectionPool, item_id: int, reason: str, token: str) -> bool:
    with pool.connection() as conn, conn.transaction():
        return outbox.mark_dropped(conn, item_id, reason=reason, token=token)


def _failed(pool: ConnectionPool, item: OutboxItem, error: str, now: datetime, held: list[int], token: str) -> bool:
    with pool.connection() as conn, conn.transaction():
        if not outbox.mark_failed(conn, item.id, error=error, attempts=item.attempts, now=now, token=token):
            return False
        # Later messages to the same conversation wait behind the failed one, so the operator reads them in order.
        outbox.hold(conn, held, until=now + outbox.retry_delay(item.attempts + 1) + timedelta(milliseconds=1),
                    token=token)
    return True


def _buried(pool: ConnectionPool, item_id: int, error: str, now: datetime, token: str, home: str | None) -> bool:
    with pool.connection() as conn, conn.transaction():
        return bury(conn, item_id, error=error, now=now, token=token, home=home) is not None


def _deferred(pool: ConnectionPool, channel: str, item: OutboxItem, reason: str, until: datetime,
              untried: list[int], token: str) -> None:
    with pool.connection() as conn, conn.transaction():
        outbox.mark_deferred(conn, item.id, reason=reason, until=until, token=token)
        # Our own lease on the untried rows ends when the platform's wait does, not a LEASE later.
        outbox.hold(conn, untried, until=until, token=token)
        # A 429 does not say whether the limit was one conversation's or our whole token's (Slack counts per
        # method and workspace, chat.postMessage also per channel; Telegram per chat and per bot), so every
        # pending row of the channel waits too, also rows beyond this batch and other deliverers' rows. The
        # operator's conversations are few, so the cost is a short wait for the others; the gain is no more
        # 429s for Slack to count against us or for Telegram to answer with a longer flood wait.
        outbox.hold_channel(conn, channel=channel, until=until)


def _progress(pool: ConnectionPool, item_id: int, token: str, until: Callable[[], datetime]) -> Progress:
    async def save(progress: dict[str, Any]) -> None:
        # Its own transaction, committed before the next part goes: a retry finds every part that went out.
        if not await asyncio.to_thread(_save_progress, pool, item_id, token, progress, until()):
            raise LeaseLost(item_id)
    return save


async def deliver_due(
    pool: ConnectionPool, *, channel: str, sender: Sender, now: datetime, lease: timedelta = LEASE,
    limit: int = BATCH, approval_id: str | None = None, clock: Callable[[], datetime] | None = None,
    max_attempts: int = MAX_ATTEMPTS, home: str | None = None,
) -> Outcome:
    """Send every due row of `channel` once. A failed send stays pending with a longer wait; nothing raises.

    A rate limit (RetryLater) ends the pass for the channel: the row, and every other pending row of the
    channel, waits as long as the platform asked, without counting an attempt. An edit of a message gone
    from the platform (CopyGone) is dropped. The failure that makes `max_attempts` makes the row dead, and the
    operator is told where `home` (or else the console) says. With `approval_id`, only the edits that approval's
    end caused: what a click on a button sends at once, through this same path, so the loop finds them settled.
    `clock` reads the time as the pass goes on (lease extensions, a 429's wait); without it, `now` stands.
    """
    token = str(uuid.uuid4())
    current = clock if clock is not None else (lambda: now)
    items = await asyncio.to_thread(_lease, pool, channel, now, lease, limit, approval_id, token)
    outcome = Outcome()
    blocked: set[str] = set()
    for index, leased in enumerate(items):
        edit = leased.edit_of is not None
        # Edits neither wait behind a conversation's failed post nor hold its later posts: order matters
        # between the messages the operator reads one after the other, not between a message and its edit.
        if not edit and leased.conversation in blocked:
            continue
        # The lease may have run out while earlier rows went (a slow platform): re-take this row, or leave it.
        item = await asyncio.to_thread(_confirm, pool, leased.id, token, current() + lease)
        if item is None:
            _lost(outcome, leased, channel, blocked, sent=False)
            continue
        try:
            ready = await _ready(pool, item, now)
            if ready.skip is not None:
                if await asyncio.to_thread(_delivered, pool, item.id, {"skipped": ready.skip}, token):
                    log.info("outbox.edit_skipped", outbox_id=item.id, channel=channel, reason=ready.skip)
                    outcome.delivered.append(item.id)
                else:
                    _lost(outcome, item, channel, blocked, sent=False)
                continue
            if ready.target is not None:
                edit_row = item if ready.decision is None else item.model_copy(update={"message": ready.decision})
                ref = await sender.edit(item=edit_row, target=ready.target, message=ready.message)
            else:
                ref = await sender.send(item=item.model_copy(update={"message": ready.message}),
                                        progress=_progress(pool, item.id, token, lambda: current() + lease))
        except LeaseLost:
            _lost(outcome, item, channel, blocked, sent=True)
            continue
        except RetryLater as busy:
            # The platform's wait starts at the 429, read from the injected clock (the pass may have sent for a while).
            until = current() + outbox.rate_limit_delay(busy.seconds)
            # Rows of conversations blocked earlier in this pass keep their backoff (hold_channel only lengthens).
            untried = [later.id for later in items[index + 1:]
                       if later.edit_of is not None or later.conversation not in blocked]
            await asyncio.to_thread(_deferred, pool, channel, item, f"{type(busy).__name__}: {busy}", until, untried,
                                    token)
            log.warning("outbox.rate_limited", outbox_id=item.id, channel=channel, retry_after=busy.seconds,
                        until=until.isoformat(), deferred=len(untried) + 1)
            outcome.deferred.extend([item.id, *untried])
            break
        except CopyGone as gone:
            if await asyncio.to_thread(_dropped, pool, item.id, f"{type(gone).__name__}: {gone}", token):
                log.warning("outbox.edit_dropped", outbox_id=item.id, channel=channel, edit_of=item.edit_of,
                            approval=item.approval_id, reason=str(gone))
                outcome.dropped.append(item.id)
            else:
                _lost(outcome, item, channel, blocked, sent=False)
            continue
        except Exception as error:  # any platform failure: the row is kept and retried, up to its allowance
            said = f"{type(error).__name__}: {error}"
            if item.attempts + 1 >= max_attempts:
                # Nothing waits behind a dead row: the conversation's later messages go on without it.
                if await asyncio.to_thread(_buried, pool, item.id, said, current(), token, home):
                    log.error("outbox.dead", outbox_id=item.id, channel=channel, attempts=item.attempts + 1,
                              error=str(error))
                    outcome.dead.append(item.id)
                else:
                    _lost(outcome, item, channel, blocked, sent=True)
                continue
            held = [] if edit else [later.id for later in items[index + 1:]
                                    if later.conversation == item.conversation and later.edit_of is None]
            if not edit:
                blocked.add(item.conversation)
            if await asyncio.to_thread(_failed, pool, item, said, now, held, token):
                log.warning("outbox.delivery_failed", outbox_id=item.id, channel=channel,
                            attempts=item.attempts + 1, error=str(error))
                outcome.failed.append(item.id)
            else:
                _lost(outcome, item, channel, blocked, sent=True)
            continue
        if ready.settled:
            ref = {**ref, "settled": ready.settled}
        if await asyncio.to_thread(_delivered, pool, item.id, ref, token):
            outcome.delivered.append(item.id)
        else:
            # Sent, but the row was another deliverer's by then: its send may repeat this one; the record is theirs.
            _lost(outcome, item, channel, blocked, sent=True)
    return outcome


def _lost(outcome: Outcome, item: OutboxItem, channel: str, blocked: set[str], *, sent: bool) -> None:
    """A row this pass no longer owns: left to the deliverer that leased it since, and its conversation's later
    rows left too, so they do not go out ahead of it."""
    log.warning("outbox.lease_lost", outbox_id=item.id, channel=channel, sent=sent)
    outcome.lost.append(item.id)
    if item.edit_of is None:
        blocked.add(item.conversation)


async def _ready(pool: ConnectionPool, item: OutboxItem, now: datetime) -> Ready:
    # Most rows carry no approval buttons and are no edit: they go as queued, without a database read.
    if item.edit_of is None and not item.approval_buttons:
        return Ready(item=item, message=item.message)
    return await asyncio.to_thread(_prepare, pool, item, now)


async def deliver_all(
    pool: ConnectionPool, *, now: datetime, registry: Mapping[str, Sender] | None = None,
    clock: Callable[[], datetime] | None = None, max_attempts: int = MAX_ATTEMPTS, home: str | None = None,
) -> dict[str, Outcome]:
    """One pass: the copies of approvals whose time ran out are queued their edits, then every registered
    channel is sent its due rows, those edits included."""
    # Here, because every process that delivers to a platform runs this pass every few seconds, so a copy
    # loses its buttons within a poll of its approval expiring, with no scheduler slot of its own.
    await asyncio.to_thread(expire_copies, pool, now=now)
    chosen = registered() if registry is None else registry
    return {channel: await deliver_due(pool, channel=channel, sender=sender, now=now, clock=clock,
                                       max_attempts=max_attempts, home=home)
            for channel, sender in list(chosen.items())}
