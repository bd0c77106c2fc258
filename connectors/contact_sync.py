"""Contacts from Stripe: a customer and its subscriptions as a contact, upserted page by page, and where an
unfinished sync stopped.

A customer is matched to a contact by its Stripe id first (linked by an earlier sync), else by address whatever
its case (a contact imported from a CSV before), and the contact keeps the Stripe id from then on. Each page is
one transaction with the position it moves the sync to, so a sync stopped anywhere goes on after the last page
it finished, and a page done twice changes nothing the second time.
"""
from __future__ import annotations

from datetime import datetime

from psycopg import Connection
from pydantic import BaseModel

from connectors.contact_import import IMPORT_LOCK
from connectors.stripe.records import StripeCustomer, StripeSubscription

# Stripe's subscription states in which the customer is paying (or is being asked to): an active contact.
PAYING = frozenset({"active", "past_due", "trialing"})
PLANS = {"month": "monthly", "year": "annual", "week": "weekly", "day": "daily"}
MONTHS_PER = {"month": 1.0, "year": 12.0, "week": 12 / 52, "day": 12 / 365}

FIND = """
SELECT id, email, name, plan, status, monthly_cents, stripe_customer_id FROM crm_contacts
WHERE stripe_customer_id = %(stripe_customer_id)s OR lower(email) = lower(%(email)s)
ORDER BY stripe_customer_id IS NOT DISTINCT FROM %(stripe_customer_id)s DESC, id LIMIT 1
FOR UPDATE
"""
INSERT = """
INSERT INTO crm_contacts (id, email, name, plan, status, monthly_cents, stripe_customer_id, created_at, updated_at)
VALUES ('c-' || nextval('crm_contact_ids'), %(email)s, %(name)s, coalesce(%(plan)s, ''), %(status)s,
        coalesce(%(monthly_cents)s, 0), %(stripe_customer_id)s, %(now)s, %(now)s)
"""
# A customer with no subscription keeps the plan and amount the contact had (from an import, say).
UPDATE = """
UPDATE crm_contacts SET email = %(email)s, name = %(name)s, plan = coalesce(%(plan)s, plan), status = %(status)s,
    monthly_cents = coalesce(%(monthly_cents)s, monthly_cents), stripe_customer_id = %(stripe_customer_id)s,
    updated_at = %(now)s
WHERE id = %(id)s
"""
POSITION = "SELECT * FROM contact_syncs WHERE source = %s"
SAVE_POSITION = """
INSERT INTO contact_syncs (source, after, pages, inserted, updated, unchanged, skipped, updated_at)
VALUES (%(source)s, %(after)s, %(pages)s, %(inserted)s, %(updated)s, %(unchanged)s, %(skipped)s, %(now)s)
ON CONFLICT (source) DO UPDATE SET after = excluded.after, pages = excluded.pages, inserted = excluded.inserted,
    updated = excluded.updated, unchanged = excluded.unchanged, skipped = excluded.skipped,
    updated_at = excluded.updated_at
"""
CLEAR_POSITION = "DELETE FROM contact_syncs WHERE source = %s"


class SyncedContact(BaseModel):
    """What Stripe says of one customer, as contact fields; None for plan and amount: no subscription to say it."""

    stripe_customer_id: str
    email: str
    name: str
    status: str
    plan: str | None
    monthly_cents: int | None


class SyncCounts(BaseModel):
    pages: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    # Customers without an email address: a contact is found and written to by its address.
    skipped: int = 0

    def plus(self, other: SyncCounts) -> SyncCounts:
        return SyncCounts(**{name: getattr(self, name) + getattr(other, name) for name in SyncCounts.model_fields})


class SyncPosition(BaseModel):
    """An unfinished sync: the last customer of the last page it finished, and what it did until then."""

    after: str
    counts: SyncCounts


def synced_contact(customer: StripeCustomer, subscriptions: list[StripeSubscription]) -> SyncedContact | None:
    """The contact a Stripe customer is: active while a subscription is paid for (active, past due, trialing),
    else lapsed (cancelled, unpaid, or none at all); plan and monthly amount from that subscription's price, or
    from the newest one. `subscriptions` newest first, as Stripe lists them. None for a customer with no address."""
    if not customer.email:
        return None
    paying = [s for s in subscriptions if s.status in PAYING]
    chosen = (paying or subscriptions or [None])[0]
    plan = monthly = None
    if chosen is not None and chosen.interval is not None:
        plan = PLANS.get(chosen.interval, chosen.interval)
        if chosen.amount_cents is not None:
            monthly = round(chosen.amount_cents / MONTHS_PER.get(chosen.interval, 1.0))
    return SyncedContact(stripe_customer_id=customer.id, email=customer.email, name=customer.name or "",
                         status="active" if paying else "lapsed", plan=plan, monthly_cents=monthly)


def upsert_synced(conn: Connection, contacts: list[SyncedContact], *, now: datetime) -> SyncCounts:
    """Insert or update a contact per customer, in the caller's transaction; counts what changed."""
    # The concurrency rule: the import's lock, to the end of the caller's transaction, so a sync and an import
    # (or two syncs) never both find one address new; the second waits, then updates what the first added.
    conn.execute(IMPORT_LOCK)
    counts = SyncCounts()
    for contact in contacts:
        row = {**contact.model_dump(), "now": now}
        found = conn.execute(FIND, row).fetchone()
        if found is None:
            conn.execute(INSERT, row)
            counts.inserted += 1
            continue
        after = {**found, **{k: v for k, v in contact.model_dump().items() if v is not None}}
        if after == found:
            counts.unchanged += 1
        else:
            conn.execute(UPDATE, {**row, "id": found["id"]})
            counts.updated += 1
    return counts


def sync_position(conn: Connection, source: str) -> SyncPosition | None:
    row = conn.execute(POSITION, (source,)).fetchone()
    if row is None:
        return None
    return SyncPosition(after=row["after"], counts=SyncCounts.model_validate(row))


def save_position(conn: Connection, source: str, position: SyncPosition, *, now: datetime) -> None:
    conn.execute(SAVE_POSITION, {"source": source, "after": position.after, **position.counts.model_dump(),
                                 "now": now})


def clear_position(conn: Connection, source: str) -> None:
    conn.execute(CLEAR_POSITION, (source,))
