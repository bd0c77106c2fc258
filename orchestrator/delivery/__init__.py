"""Outbox delivery to chat platforms: senders, the copies of approval buttons, sending, the loop, addressing,
dead letters."""
from orchestrator.delivery.address import DEFAULT_HOME, home_address, operator_address, post_scheduled
from orchestrator.delivery.copies import Ready, as_it_reads, expire_copies, prepare, queue_edits
from orchestrator.delivery.dead import MAX_ATTEMPTS, retry_dead
from orchestrator.delivery.loop import DeliveryLoop
from orchestrator.delivery.send import BATCH, LEASE, Outcome, deliver_all, deliver_due
from orchestrator.delivery.senders import (
    CopyGone,
    LeaseLost,
    Progress,
    RetryLater,
    Sender,
    register,
    registered,
    unregister,
)

__all__ = [
    "BATCH",
    "DEFAULT_HOME",
    "LEASE",
    "MAX_ATTEMPTS",
    "CopyGone",
    "DeliveryLoop",
    "LeaseLost",
    "Outcome",
    "Progress",
    "Ready",
    "RetryLater",
    "Sender",
    "as_it_reads",
    "deliver_all",
    "deliver_due",
    "expire_copies",
    "home_address",
    "operator_address",
    "post_scheduled",
    "prepare",
    "queue_edits",
    "register",
    "registered",
    "retry_dead",
    "unregister",
]
