"""The CRM connector: contacts and their access, in a sandbox table; pausing and resuming access is idempotent."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from connectors import idempotency

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


UPSERT = """
INSERT INTO crm_contacts (id, email, name, plan, status, access, monthly_cents, last_paid_at, notes)
VALUES (%(id)s, %(email)s, %(name)s, %(plan)s, %(status)s, %(access)s, %(monthly_cents)s, %(last_paid_at)s, %(notes)s)
ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name, plan = excluded.plan,
    status = excluded.status, access = excluded.access, monthly_cents = excluded.monthly_cents,
    last_paid_at = excluded.last_paid_at, notes = excluded.notes
"""


class SandboxCrm:
    name = "crm"

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

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

    def execute(self, *, action: AccessChange, key: str) -> AccessChange:
        """Set a contact's access once per key; returns the change (the earlier one for a repeated key)."""
        with self.pool.connection() as conn, conn.transaction():
            done = idempotency.claim(
                conn, key=key, connector=self.name, action="set_access", request=action.model_dump()
            )
            if done is not None and done.state == "done" and done.result is not None:
                return AccessChange.model_validate(done.result)
            before = conn.execute(
                "SELECT access FROM crm_contacts WHERE id = %s FOR UPDATE", (action.contact_id,)
            ).fetchone()
            if before is None:
                raise LookupError(f"no contact {action.contact_id}")
            conn.execute("UPDATE crm_contacts SET access = %s WHERE id = %s", (action.access, action.contact_id))
            idempotency.finish(conn, key=key, result={**action.model_dump(), "previous": before["access"]})
        return action

    def compensate(self, *, key: str) -> str:
        """Put the contact's access back to what it was before the change made under `key`."""
        with self.pool.connection() as conn, conn.transaction():
            record = idempotency.lookup(conn, key)
            if record is None or record.state != "done" or record.result is None:
                return "nothing was changed"
            conn.execute(
                "UPDATE crm_contacts SET access = %s WHERE id = %s",
                (record.result["previous"], record.result["contact_id"]),
            )
            idempotency.finish(conn, key=key, result=record.result, state="compensated")
        return f"access of {record.result['contact_id']} back to {record.result['previous']}"
