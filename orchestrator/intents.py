"""Intents: the durable, first-class record of what the operator asked for, with its constraints."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from memory import link
from orchestrator import audit
from orchestrator.errors import InvalidConstraint, NotFound
from orchestrator.policy import Risk


class Constraints(BaseModel):
    budget_usd: float = Field(gt=0)
    deadline: datetime
    risk: Risk = Risk.NORMAL


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
    risk: Risk
    dedupe_key: str | None


_BUDGET = re.compile(r"(?:budget(?:\s+of)?\s*|\bcap\s*|\$)\s*\$?(\d+(?:\.\d{1,2})?)", re.IGNORECASE)
_WITHIN = re.compile(r"\bwithin\s+(\d{1,3})\s+(day|week)s?\b", re.IGNORECASE)
_BY_DATE = re.compile(r"\bby\s+(\d{4}-\d{2}-\d{2})\b", re.IGNORECASE)
# Words by which an operator asks for care: then every outside action of the intent waits for their approval.
_CAREFUL = re.compile(r"\b(?:high[- ]risk|carefully|careful|ask me (?:first|before)|check with me)\b", re.IGNORECASE)


def parse_constraints(text: str, *, now: datetime, default_budget: float, default_days: int) -> Constraints:
    """Budget, deadline and risk stated in the request ("budget $20", "within 2 weeks", "by 2026-12-01",
    "careful"), else the defaults (pure)."""
    budget = default_budget
    if match := _BUDGET.search(text):
        budget = float(match.group(1)) or default_budget
    deadline = now + timedelta(days=default_days)
    if match := _WITHIN.search(text):
        count = int(match.group(1))
        deadline = now + (timedelta(weeks=count) if match.group(2).lower() == "week" else timedelta(days=count))
    elif match := _BY_DATE.search(text):
        try:
            day = datetime.fromisoformat(match.group(1)).replace(tzinfo=now.tzinfo)
        except ValueError as error:
            raise InvalidConstraint(f"“{match.group(1)}” is not a date in the calendar") from error
        deadline = day + timedelta(hours=23, minutes=59)
    risk = Risk.HIGH if _CAREFUL.search(text) else Risk.NORMAL
    return Constraints(budget_usd=budget, deadline=deadline, risk=risk)


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
    now: datetime,
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
    audit.append(conn, actor=requested_by, kind="intent.created", intent_id=intent.id, at=now,
                 payload={"request": request, "kind": kind, "channel": channel,
                          "budget_usd": constraints.budget_usd, "deadline": constraints.deadline,
                          "risk": constraints.risk})
    return intent


def get(conn: Connection, intent_id: int) -> Intent:
    row = conn.execute("SELECT * FROM intents WHERE id = %s", (intent_id,)).fetchone()
    if row is None:
        raise NotFound("intent", intent_id)
    return Intent.model_validate(row)


def by_dedupe_key(conn: Connection, dedupe_key: str) -> Intent | None:
    row = conn.execute("SELECT * FROM intents WHERE dedupe_key = %s", (dedupe_key,)).fetchone()
    return Intent.model_validate(row) if row else None


# The conversation before a request: what the same operator channel and conversation said earlier.
EARLIER_IN = """
SELECT * FROM intents
WHERE channel = %(channel)s AND conversation = %(conversation)s AND created_at < %(before)s
ORDER BY id DESC LIMIT %(limit)s
"""


def earlier_in(conn: Connection, *, channel: str, conversation: str, before: datetime, limit: int) -> list[Intent]:
    """The conversation's intents made before `before` (an intent's own `created_at`), newest first."""
    rows = conn.execute(EARLIER_IN, {"channel": channel, "conversation": conversation, "before": before,
                                     "limit": limit}).fetchall()
    return [Intent.model_validate(row) for row in rows]


# -- questions: a parameter opsos asked for in chat, answered by the operator's next plain message ----------

class Question(BaseModel):
    """A parameter opsos asked for in a conversation (its run cancelled, see `stop_and_ask`), not yet answered."""

    intent: Intent
    workflow: str
    missing: list[str]
    asked_at: datetime


# Derived, not stored: the question is open while the asked intent is still the conversation's latest
# (an answer, or any new request, is a later intent and closes it) and its ask is younger than `since`.
OPEN_QUESTION = """
SELECT i.*, r.workflow, e.at AS asked_at, e.payload -> 'missing' AS missing
FROM (SELECT * FROM intents WHERE channel = %(channel)s AND conversation = %(conversation)s
      ORDER BY id DESC LIMIT 1) AS i
JOIN runs r ON r.intent_id = i.id AND r.state = 'cancelled'
JOIN audit_events e ON e.run_id = r.id AND e.kind = 'params.missing'
WHERE i.requested_by = %(requested_by)s AND e.at >= %(since)s
ORDER BY e.id DESC
LIMIT 1
"""
LOCK_ASKED = "SELECT id FROM intents WHERE id = %s FOR NO KEY UPDATE"


def open_question(conn: Connection, *, channel: str, conversation: str, requested_by: str,
                  since: datetime) -> Question | None:
    """The question opsos asked `requested_by` in this conversation after `since`, if it is still open."""
    row = conn.execute(OPEN_QUESTION, {"channel": channel, "conversation": conversation,
                                       "requested_by": requested_by, "since": since}).fetchone()
    if row is None:
        return None
    return Question(intent=Intent.model_validate(row), workflow=row["workflow"], missing=row["missing"] or [],
                    asked_at=row["asked_at"])


def claim(conn: Connection, question: Question, *, since: datetime) -> bool:
    """Hold `question` for the caller's transaction, to answer it there; False if it closed meanwhile.

    Two replies sent together (or a platform's retry racing the original) both find the question
    open. The row lock on the asked intent makes the second wait until the first commits; the read
    after the lock is a new statement, so under READ COMMITTED it sees the first reply's intent and
    finds the question closed. NO KEY UPDATE, because the lock guards no column: it must not block
    the foreign-key checks of rows that point at the intent.
    """
    conn.execute(LOCK_ASKED, (question.intent.id,))
    current = open_question(conn, channel=question.intent.channel, conversation=question.intent.conversation,
                            requested_by=question.intent.requested_by, since=since)
    return current is not None and current.intent.id == question.intent.id


def answered_request(request: str, answer: str) -> str:
    """The asked request completed with the operator's answer, read again from the top by the workflow (pure)."""
    return f"{request} — {answer}"


def record_answer(conn: Connection, *, question: Question, answer: Intent, run_id: int, reply: str,
                  now: datetime) -> None:
    """Link the answering intent to the one it answers, in the audit log and the metadata index (caller's txn)."""
    audit.append(conn, actor=answer.requested_by, kind="question.answered", intent_id=answer.id, run_id=run_id, at=now,
                 payload={"question": question.intent.id, "missing": question.missing, "answer": reply[:500]})
    link(conn, ("intent", answer.id), ("intent", question.intent.id), "answers")
