"""Idempotency records: one row per outside action key, so an action done once is never done again.

A key is claimed before its action and finished after it. A claim is exclusive for a while: it names its
owner (the run lock's token, see `fencing`) and lasts until `claimed_until` on the database's clock, so two
workers that both believe they own a run cannot both act on one key, and only the owner records its outcome:
an attempt that outlived its claim finds the key taken over and writes nothing. Every claim and every finish
writes an event to the action journal in the same transaction, so no side effect goes unrecorded.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from connectors.errors import ActionInProgress, ClaimTakenOver
from connectors.fencing import check_fence, fence_owner

# The concurrency rule: this upsert is the claim. A new key is inserted pending and owned; a pending key is
# taken only by its own owner (a retry of the same hold) or once its claim has expired (its owner died, or
# lost its run, with the outcome unknown: backends make a repeat harmless). A concurrent claim of the same key
# waits on the row lock of the first and then re-evaluates the WHERE clause on what it committed, so at most
# one attempt gets the key back from RETURNING. The database's clock decides expiry: workers' clocks differ.
CLAIM = """
INSERT INTO connector_actions (key, connector, action, state, request, attempts, owner, claimed_until)
VALUES (%(key)s, %(connector)s, %(action)s, 'pending', %(request)s, 1, %(owner)s,
        clock_timestamp() + make_interval(secs => %(seconds)s))
ON CONFLICT (key) DO UPDATE
    SET attempts = connector_actions.attempts + 1, owner = excluded.owner, claimed_until = excluded.claimed_until,
        updated_at = now()
    WHERE connector_actions.state = 'pending'
      AND (connector_actions.owner IS NOT DISTINCT FROM excluded.owner
           OR connector_actions.claimed_until IS NULL OR connector_actions.claimed_until < clock_timestamp())
RETURNING key, connector, action, state, result, attempts
"""
READ = """
SELECT key, connector, action, state, result, attempts,
       greatest(extract(epoch FROM claimed_until - clock_timestamp()), 0)::float8 AS remaining
FROM connector_actions WHERE key = %s
"""
READ_FOR_UPDATE = """
SELECT key, connector, action, state, result, attempts FROM connector_actions WHERE key = %s FOR UPDATE
"""
# Only the claim's owner records its outcome: an attempt whose claim ran out and was taken over matches no row.
# Outside any fence (`owner` null) each call is an owner of its own, so there is no hold to match.
FINISH = """
UPDATE connector_actions SET state = 'done', result = %(result)s, claimed_until = NULL, updated_at = now()
WHERE key = %(key)s AND (%(owner)s::text IS NULL OR owner = %(owner)s)
RETURNING key, connector, action, state, result, attempts
"""
# A compensation holds the row from `for_undo` (FOR UPDATE, after the fence), whichever hold made the claim.
COMPENSATED = """
UPDATE connector_actions SET state = 'compensated', result = %(result)s, claimed_until = NULL, updated_at = now()
WHERE key = %(key)s
RETURNING key, connector, action, state, result, attempts
"""
# Only the claim's own owner gives it back, and only while it is still pending: one taken over since is the
# new owner's. A given-back claim has no owner: its attempt raised before acting, so unlike a claim whose worker
# died (owner kept, outcome unknown) its outcome is known, and retention may let it go once its run is over.
RELEASE = """
UPDATE connector_actions SET owner = NULL, claimed_until = clock_timestamp(), updated_at = now()
WHERE key = %(key)s AND owner = %(owner)s AND state = 'pending'
RETURNING key, connector, action, state, result, attempts
"""

# Longer than any action lasts, so a claim never expires under a live attempt (see the setting that sets it).
DEFAULT_CLAIM_SECONDS = 300.0


class ActionRecord(BaseModel):
    key: str
    connector: str = ""
    action: str
    state: str
    result: dict[str, Any] | None = None
    attempts: int = 0


class Claim(BaseModel):
    """This attempt's claim of a key: act on it (`done` is None), or the record of the action already finished."""

    record: ActionRecord
    owner: str
    done: ActionRecord | None = None


class ActionEvent(StrEnum):
    STARTED = "started"
    DONE = "done"
    COMPENSATED = "compensated"
    # The attempt raised (a refusal, a network error) and gave its claim back.
    FAILED = "failed"


class ActionJournal(Protocol):
    """Where outside actions are recorded: called inside the transaction that claims or finishes the key."""

    def record(self, conn: Connection, *, event: ActionEvent, record: ActionRecord, detail: str = "") -> None: ...


class ActionClaims:
    """Claims and finishes of outside actions, journalled; one per process, shared by its connectors."""

    def __init__(self, *, seconds: float = DEFAULT_CLAIM_SECONDS, journal: ActionJournal | None = None) -> None:
        self.seconds = seconds
        self.journal = journal

    def claim(self, conn: Connection, *, key: str, connector: str, action: str, request: dict[str, Any]) -> Claim:
        """Claim `key` for this attempt, after checking the fence (the caller still owns its run).

        Returns a claim to act on, or one whose `done` is the finished record (done or compensated). Raises
        ActionInProgress when another attempt holds the key and its claim has not expired, and whatever the
        fence raises when the caller's hold is lost. Commit the claim before acting when the action is outside
        the database (email), or act and finish in the same transaction (the sandbox tables).
        """
        owner = check_fence()
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(CLAIM, {"key": key, "connector": connector, "action": action,
                                      "request": Jsonb(request), "owner": owner, "seconds": self.seconds}).fetchone()
            if row is not None:
                record = ActionRecord.model_validate(row)
                self._journal(conn, ActionEvent.STARTED, record)
                return Claim(record=record, owner=owner)
            current = cur.execute(READ, (key,)).fetchone()
        assert current is not None, "a conflicting key has a row"
        record = ActionRecord.model_validate(current)
        if record.state == "pending":
            raise ActionInProgress(f"{key} is being done by another attempt", key=key,
                                   retry_after=current["remaining"])
        return Claim(record=record, owner=owner, done=record)

    def finish(self, conn: Connection, *, key: str, result: dict[str, Any], state: str = "done") -> None:
        """Record the action under `key` done (or compensated) with its result, and journal it.

        A `done` is recorded only under the claim's owner, the current fence's (as `claim` took it). Raises
        ClaimTakenOver, writing and journalling nothing, when another attempt has taken the key over since.
        """
        owner = fence_owner() if state == "done" else None
        sql = FINISH if state == "done" else COMPENSATED
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(sql, {"key": key, "owner": owner, "result": Jsonb(result)}).fetchone()
        if row is None and owner is not None:
            raise ClaimTakenOver(f"{key} was taken over by another attempt before this one recorded it", key=key)
        if row is not None:
            self._journal(conn, ActionEvent(state), ActionRecord.model_validate(row))

    def release(self, conn: Connection, claim: Claim, *, error: Exception) -> None:
        """Give back a claim whose attempt raised, so the next attempt may act at once; journal the failure."""
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(RELEASE, {"key": claim.record.key, "owner": claim.owner}).fetchone()
        if row is not None:
            self._journal(conn, ActionEvent.FAILED, ActionRecord.model_validate(row),
                          detail=f"{type(error).__name__}: {error}"[:500])

    def for_undo(self, conn: Connection, key: str) -> ActionRecord | None:
        """The record to compensate, locked for this transaction, after checking the fence (as `claim`)."""
        check_fence()
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(READ_FOR_UPDATE, (key,)).fetchone()
        return ActionRecord.model_validate(row) if row is not None else None

    def _journal(self, conn: Connection, event: ActionEvent, record: ActionRecord, detail: str = "") -> None:
        if self.journal is not None:
            self.journal.record(conn, event=event, record=record, detail=detail)


def lookup(conn: Connection, key: str) -> ActionRecord | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(READ, (key,)).fetchone()
    return ActionRecord.model_validate(row) if row is not None else None
