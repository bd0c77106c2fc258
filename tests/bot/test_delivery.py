"""The delivery loop: woken by the outbox notification it sends new rows; scheduled items go to the home channel."""
from __future__ import annotations

import asyncio
from typing import Any

from orchestrator import Message, MessageKind, OutboxItem
from orchestrator.delivery import DeliveryLoop, post_scheduled
from tests.bot.chat_helpers import eventually


class Recorder:
    def __init__(self) -> None:
        self.sent: list[OutboxItem] = []

    async def send(self, *, item: OutboxItem) -> dict[str, Any]:
        self.sent.append(item)
        return {"chat_id": item.conversation, "message_id": len(self.sent)}


async def test_loop_delivers_a_scheduled_item_to_the_home_channel_when_notified(services, db) -> None:
    recorder = Recorder()
    loop = DeliveryLoop(db, services.stores.database_url, clock=services.now, poll_seconds=30,
                        registry={"telegram": recorder})
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await asyncio.sleep(0.3)  # the loop is now listening, with a poll far away: only the notification wakes it
    alert = Message(kind=MessageKind.ALERT, title="Budget at 80 % of today's cap")
    with db.connection() as conn, conn.transaction():
        post_scheduled(conn, home="telegram:42", message=alert, dedupe_key="budget:80:2025-01-01")
        assert post_scheduled(conn, home="telegram:42", message=alert, dedupe_key="budget:80:2025-01-01") is None
    await eventually(lambda: recorder.sent, timeout=5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [(i.channel, i.conversation, i.message.title) for i in recorder.sent] == [
        ("telegram", "42", "Budget at 80 % of today's cap")]
    with db.connection() as conn:
        assert conn.execute("SELECT delivery_ref FROM outbox").fetchone()["delivery_ref"] == {
            "chat_id": "42", "message_id": 1}
