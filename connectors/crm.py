"""The CRM connector: the operator's contacts and their access; found by name, address or id; access, status and
provisioning are keyed."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from psycopg import Connection
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from connectors.errors import UnknownRecord
from connectors.idempotency import ActionClaims

Access = Literal["active", "paused"]
Status = Literal["active", "lapsed", "lead"]


class Contact(BaseModel):
    id: str
    email: str
    name: str
    plan: str
    # A lead has no plan yet (imported from a list of people rather than of customers).
    status: Status
    access: Access = "active"
    monthly_cents: int
    last_paid_at: datetime | None = None
    notes: str = ""
    tags: list[str] = Field(default_factory=list)
    # The columns of an imported file that opsos has no field for, under their own header.
    attributes: dict[str, Any] = Field(default_factory=dict)
    # The customer's id in the operator's Stripe account, once `opsos contacts sync stripe` linked them.
    stripe_customer_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ContactCount(BaseModel):
    total: int
    by_status: dict[str, int]


class AccessChange(BaseModel):
    contact_id: str
    access: Access


class AccessChanged(BaseModel):
    contact_id: str
    access: Access
    previous: Access
    duplicate: bool


class StatusChange(BaseModel):
    """A customer's standing changes: a subscription that ended makes them `lapsed` (a win-back candidate)."""

    contact_id: str
    status: Status


class StatusChanged(BaseModel):
    contact_id: str
    status: Status
    previous: Status
    duplicate: bool


class Provision(BaseModel):
    """Give a customer an active account on a plan: the contact is created when new, reactivated when not.

    A contact is the same customer by id or, failing that, by address: a Stripe checkout for someone imported
    before (a lead from a list) provisions that contact, linked to `stripe_customer_id`, rather than a second one.
    """

    contact_id: str
    email: str
    name: str
    plan: str = "monthly"
    stripe_customer_id: str | None = None


class Provisioned(BaseModel):
    contact_id: str
    plan: str
    created: bool
    duplicate: bool


class Tagging(BaseModel):
    """Tags written to a contact: `drop` first takes off the tags a re-tagging replaces (an entry ending in
    ":" takes off every tag it begins, so `score:` replaces an older score), then `tags` are added once each."""

    contact_id: str
    tags: list[str] = Field(min_length=1)
    drop: list[str] = Field(default_factory=list)


class Tagged(BaseModel):
    contact_id: str
    tags: list[str]
    previous: list[str]
    duplicate: bool


def retagged(current: list[str], tagging: Tagging) -> list[str]:
    """The tags a contact has after `tagging` (pure): its others kept in order, the new ones after, none twice."""
    def dropped(tag: str) -> bool:
        return any(tag == d or (d.endswith(":") and tag.startswith(d)) for d in tagging.drop)

    kept = [tag for tag in current if not dropped(tag) and tag not in tagging.tags]
    return list(dict.fromkeys([*kept, *tagging.tags]))


UPSERT = """
INSERT INTO crm_contacts (id, email, name, plan, status, access, monthly_cents, last_paid_at, notes)
VALUES (%(id)s, %(email)s, %(name)s, %(plan)s, %(status)s, %(access)s, %(monthly_cents)s, %(last_paid_at)s, %(notes)s)
ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name, plan = excluded.plan,
    status = excluded.status, access = excluded.access, monthly_cents = excluded.monthly_cents,
    last_paid_at = excluded.last_paid_at, notes = excluded.notes
"""
# A concurrent provision of the same address (another key) inserts first: this one then reuses its contact.
PROVISION_NEW = """
INSERT INTO crm_contacts (id, email, name, plan, status, access, monthly_cents, stripe_customer_id)
VALUES (%(contact_id)s, %(email)s, %(name)s, %(plan)s, 'active', 'active', 0, %(stripe_customer_id)s)
ON CONFLICT DO NOTHING RETURNING id
"""
PROVISIONED_BEFORE = """
SELECT id, plan, status, access FROM crm_contacts WHERE id = %(contact_id)s OR lower(email) = lower(%(email)s)
ORDER BY id = %(contact_id)s DESC LIMIT 1 FOR UPDATE
"""
# An existing customer keeps their name, address, price and history; only the account comes back on, and a
# Stripe customer is linked to it unless it is linked to one already.
REACTIVATE = """
UPDATE crm_contacts SET plan = %(plan)s, status = 'active', access = 'active',
    stripe_customer_id = coalesce(stripe_customer_id, %(stripe_customer_id)s)
WHERE id = %(id)s
"""
# Ordered so that an address entered twice answers with the same contact every time.
BY_EMAIL = "SELECT * FROM crm_contacts WHERE lower(email) = lower(%s) ORDER BY id LIMIT 1"
RESTORE = "UPDATE crm_contacts SET plan = %(plan)s, status = %(status)s, access = %(access)s WHERE id = %(id)s"
# Who a request names, most exact first: an id, an address or a whole name (indexed), then part of a name.
FIND_EXACT = """
SELECT * FROM crm_contacts WHERE id = %(who)s OR lower(email) = lower(%(who)s) OR lower(name) = lower(%(who)s)
ORDER BY name, id LIMIT %(limit)s
"""
FIND_IN_NAME = """
SELECT * FROM crm_contacts WHERE strpos(lower(name), lower(%(who)s)) > 0 ORDER BY name, id LIMIT %(limit)s
"""
COUNT = "SELECT status, count(*) AS n FROM crm_contacts GROUP BY status"
# The rows of one import share its time: among them, by name (ids are text, and "c-10" sorts before "c-9").
LATEST = "SELECT * FROM crm_contacts ORDER BY created_at DESC, name, id LIMIT %s"


class SandboxCrm:
    name = "crm"

    def __init__(self, pool: ConnectionPool, *, claims: ActionClaims | None = None) -> None:
        self.pool = pool
        self.claims = claims or ActionClaims()

    def upsert(self, contacts: list[Contact]) -> None:
        with self.pool.connection() as conn, conn.transaction():
            for contact in contacts:
                conn.execute(UPSERT, contact.model_dump())

    def segment(self, status: str) -> list[Contact]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT * FROM crm_contacts WHERE status = %s ORDER BY id", (status,)).fetchall()
        return [Contact.model_validate(row) for row in rows]

    def get(self, contact_id: str) -> Contact | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT * FROM crm_contacts WHERE id = %s", (contact_id,)).fetchone()
        return Contact.model_validate(row) if row else None

    def by_email(self, email: str) -> Contact | None:
        """The contact at this address, compared without case; None for a stranger."""
        with self.pool.connection() as conn:
            row = conn.execute(BY_EMAIL, (email,)).fetchone()
        return Contact.model_validate(row) if row else None

    def by_stripe_customer(self, customer: str) -> Contact | None:
        """The contact linked to this Stripe customer id (`cus_…`); None when no contact is."""
        with self.pool.connection() as conn:
            row = conn.execute("SELECT * FROM crm_contacts WHERE stripe_customer_id = %s", (customer,)).fetchone()
        return Contact.model_validate(row) if row else None

    def find(self, who: str, *, limit: int = 6) -> list[Contact]:
        """The contacts `who` names: the one with that id or address, those with that whole name, else those
        whose name contains it ("Ana", "souza"); at most `limit`, so a caller can tell one from several."""
        wanted = who.strip()
        if not wanted:
            return []
        with self.pool.connection() as conn:
            rows = conn.execute(FIND_EXACT, {"who": wanted, "limit": limit}).fetchall()
            if not rows:
                rows = conn.execute(FIND_IN_NAME, {"who": wanted, "limit": limit}).fetchall()
        return [Contact.model_validate(row) for row in rows]

    def count(self) -> ContactCount:
        with self.pool.connection() as conn:
            by_status = {row["status"]: row["n"] for row in conn.execute(COUNT).fetchall()}
        return ContactCount(total=sum(by_status.values()), by_status=by_status)

    def latest(self, limit: int = 5) -> list[Contact]:
        """The contacts added last, newest first (those of one import by name)."""
        with self.pool.connection() as conn:
            rows = conn.execute(LATEST, (limit,)).fetchall()
        return [Contact.model_validate(row) for row in rows]

    def execute(self, *, action: AccessChange | StatusChange | Provision | Tagging,
                key: str) -> AccessChanged | StatusChanged | Provisioned | Tagged:
        """Change access, status or tags, or provision an account, once per key; a repeated key returns the first
        outcome.

        The claim, the change and its record share one transaction, so a crash leaves either all three or
        none, and a second worker with the same key waits on the claimed row, then finds it done.
        Raises UnknownRecord when an access or status change names no contact.
        """
        operation = OPERATIONS[type(action)]
        with self.pool.connection() as conn, conn.transaction():
            done = self.claims.claim(
                conn, key=key, connector=self.name, action=operation, request=action.model_dump()
            ).done
            if done is not None and done.state == "done" and done.result is not None:
                return _outcome(operation, done.result, duplicate=True)
            if isinstance(action, Provision):
                result = self._provision(conn, action)
            elif isinstance(action, StatusChange):
                result = self._set_status(conn, action)
            elif isinstance(action, Tagging):
                result = self._tag(conn, action)
            else:
                result = self._set_access(conn, action)
            self.claims.finish(conn, key=key, result=result)
        return _outcome(operation, result, duplicate=False)

    def _set_access(self, conn: Connection, action: AccessChange) -> dict[str, Any]:
        before = conn.execute(
            "SELECT access FROM crm_contacts WHERE id = %s FOR UPDATE", (action.contact_id,)
        ).fetchone()
        if before is None:
            raise UnknownRecord(f"no contact {action.contact_id}", record=action.contact_id)
        conn.execute("UPDATE crm_contacts SET access = %s WHERE id = %s", (action.access, action.contact_id))
        return {**action.model_dump(), "previous": before["access"]}

    def _set_status(self, conn: Connection, action: StatusChange) -> dict[str, Any]:
        before = conn.execute(
            "SELECT status FROM crm_contacts WHERE id = %s FOR UPDATE", (action.contact_id,)
        ).fetchone()
        if before is None:
            raise UnknownRecord(f"no contact {action.contact_id}", record=action.contact_id)
        conn.execute("UPDATE crm_contacts SET status = %s WHERE id = %s", (action.status, action.contact_id))
        return {**action.model_dump(), "previous": before["status"]}

    def _tag(self, conn: Connection, action: Tagging) -> dict[str, Any]:
        # The row lock holds off an import or another tagging between reading the tags and writing them.
        before = conn.execute(
            "SELECT tags FROM crm_contacts WHERE id = %s FOR UPDATE", (action.contact_id,)
        ).fetchone()
        if before is None:
            raise UnknownRecord(f"no contact {action.contact_id}", record=action.contact_id)
        tags = retagged(list(before["tags"]), action)
        conn.execute("UPDATE crm_contacts SET tags = %s WHERE id = %s", (tags, action.contact_id))
        return {"contact_id": action.contact_id, "tags": tags, "previous": list(before["tags"])}

    def _provision(self, conn: Connection, action: Provision) -> dict[str, Any]:
        # What was there before is kept in the record, so compensation can put an existing customer back.
        # The row lock (FOR UPDATE) orders two provisions of one contact; the insert's conflict, two of one address.
        params = action.model_dump()
        before = conn.execute(PROVISIONED_BEFORE, params).fetchone()
        if before is None and conn.execute(PROVISION_NEW, params).fetchone() is not None:
            return {"contact_id": action.contact_id, "plan": action.plan, "previous": None}
        if before is None:
            before = conn.execute(PROVISIONED_BEFORE, params).fetchone()
            if before is None:
                raise UnknownRecord(f"no contact {action.contact_id} and none at {action.email}",
                                    record=action.contact_id)
        conn.execute(REACTIVATE, {**params, "id": before["id"]})
        previous = {k: before[k] for k in ("plan", "status", "access")}
        return {"contact_id": before["id"], "plan": action.plan, "previous": previous}

    def compensate(self, *, key: str) -> str:
        """Undo the change made under `key`: access, status or tags back to what they were; a provisioned account
        suspended (a new contact keeps its record, with access paused) or put back as it was (an existing one)."""
        with self.pool.connection() as conn, conn.transaction():
            record = self.claims.for_undo(conn, key)
            if record is not None and record.state == "compensated":
                return "already undone"
            if record is None or record.state != "done" or record.result is None:
                return "nothing was changed"
            result = record.result
            if record.action == "provision":
                previous = result["previous"]
                if previous is None:
                    conn.execute("UPDATE crm_contacts SET access = 'paused' WHERE id = %s", (result["contact_id"],))
                    said = f"account of {result['contact_id']} suspended"
                else:
                    conn.execute(RESTORE, {**previous, "id": result["contact_id"]})
                    said = f"account of {result['contact_id']} back to {previous['plan']}, {previous['status']}"
            elif record.action == "tag":
                conn.execute("UPDATE crm_contacts SET tags = %s WHERE id = %s",
                             (result["previous"], result["contact_id"]))
                said = f"tags of {result['contact_id']} back to {', '.join(result['previous']) or 'none'}"
            elif record.action == "set_status":
                conn.execute(
                    "UPDATE crm_contacts SET status = %s WHERE id = %s", (result["previous"], result["contact_id"])
                )
                said = f"{result['contact_id']} back to {result['previous']}"
            else:
                conn.execute(
                    "UPDATE crm_contacts SET access = %s WHERE id = %s", (result["previous"], result["contact_id"])
                )
                said = f"access of {result['contact_id']} back to {result['previous']}"
            self.claims.finish(conn, key=key, result=result, state="compensated")
        return said


OPERATIONS: dict[type[BaseModel], str] = {AccessChange: "set_access", StatusChange: "set_status",
                                          Provision: "provision", Tagging: "tag"}


def _outcome(operation: str, result: dict[str, Any], *,
             duplicate: bool) -> AccessChanged | StatusChanged | Provisioned | Tagged:
    if operation == "provision":
        return Provisioned(contact_id=result["contact_id"], plan=result["plan"],
                           created=result["previous"] is None, duplicate=duplicate)
    if operation == "tag":
        return Tagged(contact_id=result["contact_id"], tags=result["tags"], previous=result["previous"],
                      duplicate=duplicate)
    if operation == "set_status":
        return StatusChanged(contact_id=result["contact_id"], status=result["status"], previous=result["previous"],
                             duplicate=duplicate)
    return AccessChanged(contact_id=result["contact_id"], access=result["access"], previous=result["previous"],
                         duplicate=duplicate)
