"""The CRM connector: contacts and their access, in a sandbox table; access changes and provisioning are keyed."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from psycopg import Connection
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from connectors.errors import UnknownRecord
from connectors.idempotency import ActionClaims

Access = Literal["active", "paused"]


class Contact(BaseModel):
    id: str
    email: str
    name: str
    plan: str
    status: Literal["active", "lapsed"]
    access: Access = "active"
    monthly_cents: int
    last_paid_at: datetime | None = None
    notes: str = ""


class AccessChange(BaseModel):
    contact_id: str
    access: Access


class AccessChanged(BaseModel):
    contact_id: str
    access: Access
    previous: Access
    duplicate: bool


class Provision(BaseModel):
    """Give a customer an active account on a plan: the contact is created when new, reactivated when not."""

    contact_id: str
    email: str
    name: str
    plan: str = "monthly"


class Provisioned(BaseModel):
    contact_id: str
    plan: str
    created: bool
    duplicate: bool


UPSERT = """
INSERT INTO crm_contacts (id, email, name, plan, status, access, monthly_cents, last_paid_at, notes)
VALUES (%(id)s, %(email)s, %(name)s, %(plan)s, %(status)s, %(access)s, %(monthly_cents)s, %(last_paid_at)s, %(notes)s)
ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name, plan = excluded.plan,
    status = excluded.status, access = excluded.access, monthly_cents = excluded.monthly_cents,
    last_paid_at = excluded.last_paid_at, notes = excluded.notes
"""
PROVISION_NEW = """
INSERT INTO crm_contacts (id, email, name, plan, status, access, monthly_cents)
VALUES (%(contact_id)s, %(email)s, %(name)s, %(plan)s, 'active', 'active', 0)
"""
# An existing customer keeps their name, address, price and history; only the account comes back on.
REACTIVATE = "UPDATE crm_contacts SET plan = %(plan)s, status = 'active', access = 'active' WHERE id = %(contact_id)s"
# Ordered so that an address entered twice answers with the same contact every time.
BY_EMAIL = "SELECT * FROM crm_contacts WHERE lower(email) = lower(%s) ORDER BY id LIMIT 1"
RESTORE = "UPDATE crm_contacts SET plan = %(plan)s, status = %(status)s, access = %(access)s WHERE id = %(id)s"


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

    def execute(self, *, action: AccessChange | Provision, key: str) -> AccessChanged | Provisioned:
        """Change access, or provision an account, once per key; a repeated key returns the first outcome.

        The claim, the change and its record share one transaction, so a crash leaves either all three or
        none, and a second worker with the same key waits on the claimed row, then finds it done.
        Raises UnknownRecord when an access change names no contact.
        """
        operation = "provision" if isinstance(action, Provision) else "set_access"
        with self.pool.connection() as conn, conn.transaction():
            done = self.claims.claim(
                conn, key=key, connector=self.name, action=operation, request=action.model_dump()
            ).done
            if done is not None and done.state == "done" and done.result is not None:
                return _outcome(operation, done.result, duplicate=True)
            result = self._provision(conn, action) if isinstance(action, Provision) else self._set_access(conn, action)
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

    def _provision(self, conn: Connection, action: Provision) -> dict[str, Any]:
        # What was there before is kept in the record, so compensation can put an existing customer back.
        before = conn.execute(
            "SELECT plan, status, access FROM crm_contacts WHERE id = %s FOR UPDATE", (action.contact_id,)
        ).fetchone()
        if before is None:
            conn.execute(PROVISION_NEW, action.model_dump())
        else:
            conn.execute(REACTIVATE, action.model_dump())
        return {"contact_id": action.contact_id, "plan": action.plan,
                "previous": dict(before) if before is not None else None}

    def compensate(self, *, key: str) -> str:
        """Undo the change made under `key`: access back to what it was; a provisioned account suspended
        (a new contact keeps its record, with access paused) or put back as it was (an existing one)."""
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
            else:
                conn.execute(
                    "UPDATE crm_contacts SET access = %s WHERE id = %s", (result["previous"], result["contact_id"])
                )
                said = f"access of {result['contact_id']} back to {result['previous']}"
            self.claims.finish(conn, key=key, result=result, state="compensated")
        return said


def _outcome(operation: str, result: dict[str, Any], *, duplicate: bool) -> AccessChanged | Provisioned:
    if operation == "provision":
        return Provisioned(contact_id=result["contact_id"], plan=result["plan"],
                           created=result["previous"] is None, duplicate=duplicate)
    return AccessChanged(contact_id=result["contact_id"], access=result["access"], previous=result["previous"],
                         duplicate=duplicate)
