"""Where messages nobody asked for just now go (digests, budget alerts): one rule for every caller.

The operator's home channel when set (`OPSOS_HOME_CHANNEL=slack:C123`); else the conversation the
operator last asked from, where they are known to read; else the console. A budget alert posted by
a model call and the same alert from the scheduler's check share a dedupe key, so both must land in
the same place whichever posts first.
"""
from __future__ import annotations

import psycopg

from orchestrator import outbox
from orchestrator.messages import Message

DEFAULT_HOME = ("console", "console:local")
LAST_ASKED_FROM = "SELECT channel, conversation FROM intents ORDER BY id DESC LIMIT 1"


def home_address(setting: str | None) -> tuple[str, str] | None:
    """The operator's chosen place, `channel:conversation` (e.g. `slack:C123`, `telegram:42`); None if unset (pure)."""
    if not setting or ":" not in setting:
        return None
    channel, conversation = setting.split(":", 1)
    return channel, conversation


def operator_address(conn: psycopg.Connection, home: str | None) -> tuple[str, str]:
    """Where to tell the operator something unasked: the home channel, the last conversation asked from, the console."""
    chosen = home_address(home)
    if chosen is not None:
        return chosen
    row = conn.execute(LAST_ASKED_FROM).fetchone()
    return (row["channel"], row["conversation"]) if row else DEFAULT_HOME


def post_scheduled(conn: psycopg.Connection, *, home: str | None, message: Message,
                   dedupe_key: str | None = None) -> int | None:
    """Queue a message nobody asked for just now (digest, budget alert) where `operator_address` says, in the
    caller's transaction."""
    channel, conversation = operator_address(conn, home)
    return outbox.post(conn, channel=channel, conversation=conversation, message=message, dedupe_key=dedupe_key)
