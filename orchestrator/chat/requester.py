"""Who speaks to opsos, from where: the identity every chat call carries, and the refusal of a stranger."""
from __future__ import annotations

from typing import Any

import structlog
from pydantic import BaseModel

from orchestrator import audit, words
from orchestrator.messages import Message
from orchestrator.services import Services

log = structlog.get_logger(__name__)


class Requester(BaseModel):
    """Who speaks, from where: the identity is `channel:user-id`; replies go to `conversation`."""

    identity: str
    channel: str
    conversation: str
    # Only the operator reads this conversation (a DM, a private chat, the console, the dashboard). Unknown is
    # not private: what signs in as the operator is never posted where others may read and click it first.
    private: bool = False


def refuse(services: Services, who: Requester, attempted: str, detail: dict[str, Any] | None = None) -> Message:
    """Record an attempt by someone who is not an operator (an audit event) and answer it with a refusal."""
    with services.stores.pool.connection() as conn, conn.transaction():
        audit.append(conn, actor=who.identity, kind="access.refused", at=services.now(),
                     payload={"attempted": attempted, "channel": who.channel, **(detail or {})})
    log.warning("access.refused", identity=who.identity, attempted=attempted)
    return words.not_authorised(who.identity)
