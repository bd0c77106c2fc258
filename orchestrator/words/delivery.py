"""What the operator is told about the outbox itself: a message that could not be delivered, messages requeued."""
from __future__ import annotations

from orchestrator.messages import Fact, Message, MessageKind, Section
from orchestrator.outbox import OutboxItem
from orchestrator.words.common import plural, utc

RETRY_DEAD_COMMAND = "opsos outbox retry-dead"


def undeliverable(item: OutboxItem) -> Message:
    """The one notice that a message was given up on, sent on another route than the one that failed."""
    return Message(
        kind=MessageKind.ALERT,
        title=f"A message to {item.channel} {item.conversation} could not be delivered: “{item.message.title}”",
        text=(f"It failed {plural(item.attempts, 'time')} and is no longer retried. Once the cause is fixed, "
              f"`{RETRY_DEAD_COMMAND}` sends it again."),
        sections=[Section(facts=[
            Fact(label="Queued", value=utc(item.created_at)),
            Fact(label="Last error", value=item.last_error or "unknown"),
        ])],
        run_id=item.run_id,
    )


def dead_requeued(items: list[OutboxItem]) -> Message:
    """The answer of `opsos outbox retry-dead`: which dead messages are queued again."""
    if not items:
        return Message(kind=MessageKind.NOTICE, title="No dead message to retry.")
    return Message(
        kind=MessageKind.NOTICE,
        title=f"{plural(len(items), 'dead message')} queued again; they go out with the next delivery pass.",
        sections=[Section(facts=[Fact(label=f"#{item.id} {item.channel} {item.conversation}",
                                      value=item.message.title) for item in items])],
    )
