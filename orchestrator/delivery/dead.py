"""Dead letters: an outbox row that failed too often stops being retried, is audited, and the operator is told
once on another route; `retry_dead` queues such rows again when the operator says so.

Only failures count (a platform's rate limit defers a row without counting an attempt), and the backoff tops
out at ten minutes, so the default allowance outlasts a platform outage of several hours.
"""
from __future__ import annotations

from datetime import datetime

import psycopg
import structlog
from psycopg_pool import ConnectionPool

from orchestrator import audit, outbox, words
from orchestrator.delivery.address import DEFAULT_HOME, operator_address
from orchestrator.outbox import OutboxItem

log = structlog.get_logger(__name__)

ACTOR = "delivery"
# 72 failed attempts: about 17 minutes of doubling waits, then one try every 10 minutes, so about 10.5 hours.
MAX_ATTEMPTS = 72
# The notices about dead rows carry this key prefix: a notice that dies itself is not announced again (the
# route that should have carried it is the one that is down).
NOTICE_KEY = "outbox.dead:"


def notice_address(conn: psycopg.Connection, *, home: str | None, failed_channel: str) -> tuple[str, str] | None:
    """Where to say that a message to `failed_channel` died: the operator's usual place if it is another
    channel, else the console (which shows its outbox whenever the operator opens it); None if the console is
    the channel that failed."""
    chosen = operator_address(conn, home)
    if chosen[0] != failed_channel:
        return chosen
    return DEFAULT_HOME if DEFAULT_HOME[0] != failed_channel else None


def bury(conn: psycopg.Connection, item_id: int, *, error: str, now: datetime, token: str,
         home: str | None) -> OutboxItem | None:
    """In the caller's transaction: the row `dead` with its last error, its `outbox.dead` event, and the notice
    on another route. None, and nothing changed, when the row is no longer this deliverer's (`token`)."""
    dead = outbox.mark_dead(conn, item_id, error=error, now=now, token=token)
    if dead is None:
        return None
    event = audit.append(conn, actor=ACTOR, kind="outbox.dead", intent_id=dead.intent_id, run_id=dead.run_id,
                         at=now, payload={"outbox_id": dead.id, "channel": dead.channel,
                                          "conversation": dead.conversation, "attempts": dead.attempts,
                                          "error": dead.last_error})
    if (dead.dedupe_key or "").startswith(NOTICE_KEY):
        return dead
    route = notice_address(conn, home=home, failed_channel=dead.channel)
    if route is not None:
        # Keyed by the event: one notice per death, also when a requeued row dies again.
        outbox.post(conn, channel=route[0], conversation=route[1], message=words.undeliverable(dead),
                    run_id=dead.run_id, intent_id=dead.intent_id, dedupe_key=f"{NOTICE_KEY}{dead.id}:{event.id}")
    return dead


def retry_dead(pool: ConnectionPool, *, now: datetime, actor: str, ids: list[int] | None = None) -> list[OutboxItem]:
    """Queue dead rows again (all, or those of `ids`), each with a fresh allowance of attempts and an
    `outbox.requeued` event by `actor`; returns them. A row half sent goes on from the parts already out."""
    with pool.connection() as conn, conn.transaction():
        requeued = outbox.requeue_dead(conn, now=now, ids=ids)
        for item in requeued:
            audit.append(conn, actor=actor, kind="outbox.requeued", intent_id=item.intent_id, run_id=item.run_id,
                         at=now, payload={"outbox_id": item.id, "channel": item.channel,
                                          "conversation": item.conversation, "last_error": item.last_error})
    if requeued:
        log.info("outbox.requeued", outbox_ids=[item.id for item in requeued], actor=actor)
    return requeued
