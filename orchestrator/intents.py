"""Intents: the durable, first-class record of what the operator asked for, with its constraints."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from orchestrator import audit
from orchestrator.errors import NotFound


class Constraints(BaseModel):
    budget_usd: float = Field(gt=0)
    deadline: datetime
    risk: str = "normal"


class Intent(BaseModel):
    id: int
    created_at: datetime
    requested_by: str
    channel: str
    conversation: str
    request: str
    kind: str
    params: dict[str, Any]
    budget_usd: float
    deadline: datetime
    risk: str
    dedupe_key: str | None


_BUDGET = re.compile(r"(?:budget(?:\s+of)?\s*|\bcap\s*|\$)\s*\$?(\d+(?:\.\d{1,2})?)", re.IGNORECASE)
_WITHIN = re.compile(r"\bwithin\s+(\d{1,3})\s+(day|week)s?\b", re.IGNORECASE)
_BY_DATE = re.compile(r"\bby\s+(\d{4}-\d{2}-\d{2})\b", re.IGNORECASE)


def parse_constraints(text: str, *, now: datetime, default_budget: float, default_days: int) -> Constraints:
    """Budget and deadline stated in the request ("budget $20", "within 2 weeks", "by 2026-12-01"), else defaults."""
    budget = default_budget
    if match := _BUDGET.search(text):
        budget = float(match.group(1)) or default_budget
    deadline = now + timedelta(days=default_days)
    if match := _WITHIN.search(text):
        count = int(match.group(1))
        deadline = now + (timedelta(weeks=count) if match.group(2).lower() == "week" else timedelta(days=count))
    elif match := _BY_DATE.search(text):
        day = datetime.fromisoformat(match.group(1)).replace(tzinfo=now.tzinfo)
        deadline = day + timedelta(hours=23, minutes=59)
    return Constraints(budget_usd=budget, deadline=deadline)


INSERT = """
INSERT INTO intents (requested_by, channel, conversation, request, kind, params, budget_usd, deadline, risk, dedupe_key)
VALUES (%(requested_by)s, %(channel)s, %(conversation)s, %(request)s, %(kind)s, %(params)s, %(budget_usd)s,
        %(deadline)s, %(risk)s, %(dedupe_key)s)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING *
"""


def create(
    conn: Connection,
    *,
    requested_by: str,
    channel: str,
    conversation: str,
    request: str,
    kind: str,
    params: dict[str, Any],
    constraints: Constraints,
    dedupe_key: str | None,
) -> Intent | None:
    """Write the intent and its audit event in the caller's transaction; None if `dedupe_key` was seen before."""
    row = conn.execute(
        INSERT,
        {"requested_by": requested_by, "channel": channel, "conversation": conversation, "request": request,
         "kind": kind, "params": Jsonb(params), "budget_usd": constraints.budget_usd,
         "deadline": constraints.deadline, "risk": constraints.risk, "dedupe_key": dedupe_key},
    ).fetchone()
    if row is None:
        return None
    intent = Intent.model_validate(row)
    audit.append(conn, actor=requested_by, kind="intent.created", intent_id=intent.id,
                 payload={"request": request, "kind": kind, "channel": channel,
                          "budget_usd": constraints.budget_usd, "deadline": constraints.deadline})
    return intent


def get(conn: Connection, intent_id: int) -> Intent:
    row = conn.execute("SELECT * FROM intents WHERE id = %s", (intent_id,)).fetchone()
    if row is None:
        raise NotFound("intent", intent_id)
    return Intent.model_validate(row)


def by_dedupe_key(conn: Connection, dedupe_key: str) -> Intent | None:
    row = conn.execute("SELECT * FROM intents WHERE dedupe_key = %s", (dedupe_key,)).fetchone()
    return Intent.model_validate(row) if row else None
