"""Importing contacts in bulk: every good row COPYed into a temporary table, then one update and one insert, counted.

Rows are matched to contacts by address, whatever its case (the table's unique index on lower(email)), so
importing a file again updates what changed and adds nothing twice. A cell left empty, or a column the file
does not have, keeps what opsos has; attributes are merged, a later file's value winning.

A new contact's id is `c-` and a number from the `crm_contact_ids` sequence: unique by construction, short
enough to type in chat ("contact c-1042"). An id derived from the address would collide with a contact whose
address has changed since it was made, and nothing needs to derive it: the address is what an import matches.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from psycopg import Connection
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from connectors.contact_csv import ContactRow

# The concurrency rule: one import at a time per database, held to the end of the caller's transaction. Two
# imports of overlapping files would otherwise both find an address new and the second would fail on the
# unique index; this way the second waits and then updates what the first added. Other writers (the demo, a
# provisioning step) take only row locks, and an import's update waits on those.
IMPORT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('crm_contacts.import'))"
STAGE = """
CREATE TEMPORARY TABLE contacts_import (
    line int NOT NULL, email text NOT NULL, name text, plan text, status text, monthly_cents int,
    tags text[], notes text, attributes jsonb NOT NULL
) ON COMMIT DROP
"""
COPY_STAGE = ("COPY contacts_import (line, email, name, plan, status, monthly_cents, tags, notes, attributes) "
              "FROM STDIN")
INDEX_STAGE = "CREATE INDEX ON contacts_import (lower(email)); ANALYZE contacts_import"
# NULL in the stage means "not in the file": the contact keeps its value.
UPDATE = """
UPDATE crm_contacts AS c SET
    name = coalesce(i.name, c.name), plan = coalesce(i.plan, c.plan), status = coalesce(i.status, c.status),
    monthly_cents = coalesce(i.monthly_cents, c.monthly_cents), tags = coalesce(i.tags, c.tags),
    notes = coalesce(i.notes, c.notes), attributes = c.attributes || i.attributes, updated_at = %(now)s
FROM contacts_import AS i
WHERE lower(c.email) = lower(i.email)
  AND (coalesce(i.name, c.name), coalesce(i.plan, c.plan), coalesce(i.status, c.status),
       coalesce(i.monthly_cents, c.monthly_cents), coalesce(i.tags, c.tags), coalesce(i.notes, c.notes),
       c.attributes || i.attributes)
      IS DISTINCT FROM (c.name, c.plan, c.status, c.monthly_cents, c.tags, c.notes, c.attributes)
"""
# Someone with no plan and no amount in the file is a lead, not a customer, unless the file says otherwise.
INSERT = """
INSERT INTO crm_contacts (id, email, name, plan, status, monthly_cents, tags, notes, attributes, created_at, updated_at)
SELECT 'c-' || nextval('crm_contact_ids'), i.email, coalesce(i.name, ''), coalesce(i.plan, ''),
       coalesce(i.status, CASE WHEN i.plan IS NULL AND i.monthly_cents IS NULL THEN 'lead' ELSE 'active' END),
       coalesce(i.monthly_cents, 0), coalesce(i.tags, '{}'), coalesce(i.notes, ''), i.attributes, %(now)s, %(now)s
FROM contacts_import AS i
WHERE NOT EXISTS (SELECT 1 FROM crm_contacts AS c WHERE lower(c.email) = lower(i.email))
ORDER BY i.line
"""


class ImportCounts(BaseModel):
    inserted: int
    updated: int
    unchanged: int


def import_rows(conn: Connection, rows: Iterable[ContactRow], *, now: datetime) -> ImportCounts:
    """Insert or update a contact per row, in the caller's transaction (all rows or none).

    `rows` must not name one address twice (`ContactCsv` reports a repeat as a bad row): a second row for
    an address would update the contact a second time in one statement, which PostgreSQL refuses.
    """
    conn.execute(IMPORT_LOCK)
    conn.execute(STAGE)
    total = 0
    with conn.cursor().copy(COPY_STAGE) as copy:
        for row in rows:
            copy.write_row((row.line, row.email, row.name, row.plan, row.status, row.monthly_cents, row.tags,
                            row.notes, Jsonb(row.attributes)))
            total += 1
    if total == 0:
        return ImportCounts(inserted=0, updated=0, unchanged=0)
    conn.execute(INDEX_STAGE)
    updated = conn.execute(UPDATE, {"now": now}).rowcount
    inserted = conn.execute(INSERT, {"now": now}).rowcount
    return ImportCounts(inserted=inserted, updated=updated, unchanged=total - inserted - updated)
