"""The senders: one per chat platform, registered by the process that owns it, and the errors they raise.

The senders live in `bot/`; the processes that own them register them here at start.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from orchestrator.errors import OpsError
from orchestrator.messages import Message
from orchestrator.outbox import OutboxItem

# Saves, in its own short transaction, what a sender got out so far (its platform references), so a retry after
# a later call failed sends only the rest; raises LeaseLost when the row is no longer this deliverer's.
Progress = Callable[[dict[str, Any]], Awaitable[None]]


class Sender(Protocol):
    """Sends one outbox row to its platform; returns the platform's reference to what it posted.

    A message that goes out in several calls (Telegram's parts) starts after what `item.progress` says already
    went, and hands `progress` what it got out after each call but the last; the returned reference names every
    part. Raises RetryLater when the platform rate-limits it; any other exception is a failed attempt.
    """

    async def send(self, *, item: OutboxItem, progress: Progress) -> dict[str, Any]: ...

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


class LeaseLost(OpsError):
    """The row being sent is no longer this deliverer's: its lease ran out and another deliverer took it.

    Whatever is left to send is theirs now; this one stops and changes nothing.
    """

    def __init__(self, item_id: int) -> None:
        super().__init__(f"outbox row {item_id} was leased by another deliverer")
        self.item_id = item_id


class CopyGone(OpsError):
    """The message an edit was for no longer exists where it was (deleted, its channel or chat gone).

    Nothing is left to change, now or later: the edit is settled as dropped, never retried.
    """


_senders: dict[str, Sender] = {}


def register(channel: str, sender: Sender) -> None:
    _senders[channel] = sender


def unregister(channel: str) -> None:
    _senders.pop(channel, None)


def registered() -> dict[str, Sender]:
    return dict(_senders)
