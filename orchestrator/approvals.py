"""Approvals: records bound to a digest of the exact action they approve, decided once, expiring.

An approval names the action by `sha256(canonical JSON of the action)`: what will execute, resolved
from current records (the rendered emails with their addresses, the charges with their amounts). When
the action changes, the digest changes and a new approval is asked: a pending one for the old action is
void, an approved one is replaced (`supersedes`) and lets nothing run any more.

A record module: these functions change rows and return what ended. Whenever an approval stops being
answerable (approved, rejected, void, expired), the caller (`transitions`) queues in the same transaction
an edit of every message that carries its buttons, so no copy, on any platform, keeps offering buttons
that would only answer "nothing changed".
"""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from memory import link, step_node
from orchestrator import audit
from orchestrator.errors import ApprovalAlreadyDecided, ApprovalExpired, ApprovalStale, NotFound, OpsError
from orchestrator.keys import step_key
from orchestrator.messages import Fact
from orchestrator.policy import Effect


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    VOID = "void"
    EXPIRED = "expired"


class ApprovalRequest(BaseModel):
    """What the operator is asked: what will happen, why, what it costs, and a preview of the action."""

    what: str
    why: str
    facts: list[Fact] = Field(default_factory=list)
    estimated_cost_usd: float = 0.0
    preview: str = ""
    # What the approval lets happen, in policy's terms; None for a model tier or a budget raise (see `supersedes`).
    effect: Effect | None = None
    # The approved approval of the same step and effect whose action changed before it ran: this one replaces it,
    # so that one lets nothing run any more (`granted`), even should the action change back to what it approved.
    supersedes: str | None = None


class AwaitingApproval(OpsError):
    """Raised by a step whose action needs an approval that has not been given."""

    def __init__(self, *, digest: str, ask: ApprovalRequest, ttl: timedelta | None = None) -> None:
        super().__init__(ask.what)
        self.digest = digest
        self.ask = ask
        # How long the approval stays open, when the step says (a workflow file's gate); else the settings'.
        self.ttl = ttl


class Approval(BaseModel):
    id: str
    run_id: int
    step: str
    action_digest: str
    request: ApprovalRequest
    state: ApprovalState
    requested_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    decided_via: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.state is ApprovalState.PENDING and now >= self.expires_at


class Asked(BaseModel):
    """What asking did: the approval the action waits for, whether it is newly asked, and the ones it ended."""

    approval: Approval
    new: bool
    ended: list[Approval] = Field(default_factory=list)


def shown_as(approval: Approval, now: datetime) -> Approval | None:
    """The approval as its copies should show it at `now` (pure): None while its buttons still answer.

    One past its time is shown expired though its record may still say pending: the record changes
    when someone acts on it (see `decide`, `request`), the buttons must go when the time is up.
    """
    if approval.state is not ApprovalState.PENDING:
        return approval
    return approval.model_copy(update={"state": ApprovalState.EXPIRED}) if approval.expired(now) else None


def action_digest(action: Any) -> str:
    canonical = json.dumps(action, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _new_id() -> str:
    # Short and opaque: it travels as button data (Telegram's limit is 64 bytes) and is resolved here.
    return "a" + secrets.token_hex(5)


INSERT = """
INSERT INTO approvals (id, run_id, step, action_digest, request, state, requested_at, expires_at)
VALUES (%(id)s, %(run_id)s, %(step)s, %(digest)s, %(request)s, 'pending', %(now)s, %(expires)s) RETURNING *
"""
FOR_STEP = "SELECT * FROM approvals WHERE run_id = %s AND step = %s ORDER BY requested_at"


def for_step(conn: Connection, run_id: int, step: str) -> list[Approval]:
    return [Approval.model_validate(r) for r in conn.execute(FOR_STEP, (run_id, step)).fetchall()]


def get(conn: Connection, approval_id: str, *, for_update: bool = False) -> Approval:
    sql = "SELECT * FROM approvals WHERE id = %s" + (" FOR UPDATE" if for_update else "")
    row = conn.execute(sql, (approval_id,)).fetchone()
    if row is None:
        raise NotFound("approval", approval_id)
    return Approval.model_validate(row)


def by_ids(conn: Connection, approval_ids: list[str]) -> dict[str, Approval]:
    rows = conn.execute("SELECT * FROM approvals WHERE id = ANY(%s)", (approval_ids,)).fetchall()
    return {row["id"]: Approval.model_validate(row) for row in rows}


def pending(conn: Connection) -> list[Approval]:
    rows = conn.execute("SELECT * FROM approvals WHERE state = 'pending' ORDER BY requested_at").fetchall()
    return [Approval.model_validate(r) for r in rows]


def granted(conn: Connection, *, run_id: int, step: str, digest: str) -> Approval | None:
    """The approval that lets this exact action run, if the operator gave one and no later ask replaced it."""
    asked = for_step(conn, run_id, step)
    replaced = {approval.request.supersedes for approval in asked}
    for approval in asked:
        if (approval.state is ApprovalState.APPROVED and approval.action_digest == digest
                and approval.id not in replaced):
            return approval
    return None


def approved_before(conn: Connection, *, run_id: int, step: str, effect: Effect, digest: str) -> Approval | None:
    """The newest approval the operator gave this step for `effect` with another action than `digest`: what they
    approved, which is no longer what would run. A new ask replaces it (`ApprovalRequest.supersedes`)."""
    earlier = [approval for approval in for_step(conn, run_id, step)
               if approval.state is ApprovalState.APPROVED and approval.request.effect is effect
               and approval.action_digest != digest]
    return earlier[-1] if earlier else None


def request(
    conn: Connection,
    *,
    run_id: int,
    intent_id: int,
    step: str,
    digest: str,
    ask: ApprovalRequest,
    ttl: timedelta,
    now: datetime,
) -> Asked:
    """Ask for an approval of this action, inside the caller's transaction.

    A pending approval for the same digest is reused (a re-run must not ask twice); pending ones for
    another digest are void, because the action they describe is no longer the one that would run, and
    one for the same digest past its time expired: both are returned as ended.
    """
    existing = None
    ended: list[Approval] = []
    for approval in for_step(conn, run_id, step):
        if approval.state is not ApprovalState.PENDING:
            continue
        if approval.action_digest == digest and not approval.expired(now) and not _lapsed(conn, approval.id):
            existing = approval
        else:
            state = ApprovalState.EXPIRED if approval.action_digest == digest else ApprovalState.VOID
            conn.execute("UPDATE approvals SET state = %s WHERE id = %s", (state, approval.id))
            audit.append(conn, actor="opsos", kind=f"approval.{state.value}", intent_id=intent_id, run_id=run_id,
                         at=now,
                         payload={"approval": approval.id, "step": step, "digest": approval.action_digest})
            ended.append(approval.model_copy(update={"state": state}))
    if existing is not None:
        return Asked(approval=existing, new=False, ended=ended)
    row = conn.execute(
        INSERT,
        {"id": _new_id(), "run_id": run_id, "step": step, "digest": digest,
         "request": Jsonb(ask.model_dump(mode="json")), "now": now, "expires": now + ttl},
    ).fetchone()
    approval = Approval.model_validate(row)
    payload: dict[str, Any] = {"approval": approval.id, "step": step, "digest": digest,
                               "expires_at": approval.expires_at}
    if ask.supersedes is not None:
        payload["supersedes"] = ask.supersedes
    audit.append(conn, actor="opsos", kind="approval.requested", intent_id=intent_id, run_id=run_id, at=now,
                 payload=payload)
    link(conn, ("approval", approval.id), step_node(step_key(run_id, step)), "approves")
    return Asked(approval=approval, new=True, ended=ended)


def decide(
    conn: Connection,
    approval_id: str,
    decision: Decision,
    *,
    identity: str,
    channel: str,
    intent_id: int,
    now: datetime,
) -> Approval:
    """Record the operator's decision, once. Raises ApprovalAlreadyDecided, ApprovalExpired or ApprovalStale.

    The row lock makes two clicks arriving together decide one after the other: the second sees
    the first's decision and raises, so a decision is never recorded twice. The same lock orders a
    click against `lapse`: one whose copies were already shown expired is expired, even if the
    clicker's `now` was read a moment before its time ran out.
    """
    approval = get(conn, approval_id, for_update=True)
    if approval.state in (ApprovalState.APPROVED, ApprovalState.REJECTED):
        raise ApprovalAlreadyDecided(approval.state.value, approval.decided_by or "?", approval.decided_at or now)
    if approval.state is ApprovalState.VOID:
        ended = conn.execute(RUN_ENDED, (approval.run_id,)).fetchone()
        if ended is not None:
            raise ApprovalStale(f"run #{approval.run_id} was {ended['state']}; there is nothing left to decide")
        raise ApprovalStale("the action changed after this approval was asked; a new approval was requested")
    if approval.state is ApprovalState.EXPIRED or approval.expired(now) or _lapsed(conn, approval_id):
        if approval.state is ApprovalState.PENDING:
            conn.execute("UPDATE approvals SET state = 'expired' WHERE id = %s", (approval_id,))
            audit.append(conn, actor="opsos", kind="approval.expired", intent_id=intent_id, at=now,
                         run_id=approval.run_id, payload={"approval": approval_id})
            raise ApprovalExpired(approval.expires_at, recorded=True)
        raise ApprovalExpired(approval.expires_at)
    row = conn.execute(
        "UPDATE approvals SET state = %s, decided_by = %s, decided_at = %s, decided_via = %s WHERE id = %s RETURNING *",
        (ApprovalState(decision.value), identity, now, channel, approval_id),
    ).fetchone()
    event = audit.append(conn, actor=identity, kind=f"approval.{decision.value}", intent_id=intent_id, at=now,
                         run_id=approval.run_id, payload={"approval": approval_id, "step": approval.step,
                                                          "digest": approval.action_digest, "via": channel})
    link(conn, ("audit_event", event.id), ("approval", approval_id), "records")
    return Approval.model_validate(row)


RUN_ENDED = "SELECT state FROM runs WHERE id = %s AND finished_at IS NOT NULL"
WITHDRAW = "UPDATE approvals SET state = 'void' WHERE run_id = %s AND state = 'pending' RETURNING *"


def withdraw(conn: Connection, *, run_id: int, intent_id: int, outcome: str, now: datetime) -> list[Approval]:
    """Void a run's pending approvals because the run ended (`outcome`), in the caller's transaction.

    A cancelled run's approval would otherwise keep live buttons until it expires, and a click on
    them would answer with an error instead of the plain fact that there is nothing left to decide.
    """
    withdrawn = [Approval.model_validate(row) for row in conn.execute(WITHDRAW, (run_id,)).fetchall()]
    for approval in withdrawn:
        audit.append(conn, actor="opsos", kind="approval.void", intent_id=intent_id, run_id=run_id, at=now,
                     payload={"approval": approval.id, "step": approval.step, "digest": approval.action_digest,
                              "reason": f"run {outcome}"})
    return withdrawn


# Pending approvals past their time whose buttons some copy still shows (no edit queued for it yet).
# SKIP LOCKED: an approval a click holds is being decided; the next pass finds it decided, or still due.
LAPSED = """
SELECT a.* FROM approvals a
WHERE a.state = 'pending' AND a.expires_at <= %(now)s
  AND EXISTS (SELECT 1 FROM outbox c
              WHERE c.approval_buttons <> '{}' AND c.approval_buttons @> ARRAY[a.id] AND c.edit_of IS NULL
                AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.edit_of = c.id AND e.approval_id = a.id))
ORDER BY a.expires_at
FOR UPDATE OF a SKIP LOCKED
"""
# Edits are queued for a still-pending approval only by `lapse`: its copies were told it expired.
LAPSED_ONE = "SELECT 1 FROM outbox WHERE edit_of IS NOT NULL AND approval_id = %s LIMIT 1"


def lapse(conn: Connection, *, now: datetime) -> list[Approval]:
    """The pending approvals past their time whose copies still show buttons, as their copies must show them:
    expired. The caller queues those edits in this transaction (`delivery.copies.expire_copies`).

    The record stays pending, as before: it turns `expired`, with its audit event, when someone acts on it,
    and until then the digest, status and dashboard say "expired: resume the run to ask again". Two processes
    lapsing together queue each edit once: the second insert of an edit waits on the first's dedupe key and
    then adds nothing.
    """
    rows = conn.execute(LAPSED, {"now": now}).fetchall()
    return [Approval.model_validate(row).model_copy(update={"state": ApprovalState.EXPIRED}) for row in rows]


def _lapsed(conn: Connection, approval_id: str) -> bool:
    return conn.execute(LAPSED_ONE, (approval_id,)).fetchone() is not None
