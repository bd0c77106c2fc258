"""Contacts into opsos: a people CSV imported into the CRM in one transaction with its audit event; the operator's
Stripe customers synced in, page by page, resumable."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
from pydantic import BaseModel

from connectors import (
    BadRow,
    ContactCsv,
    ContactRow,
    StripePayments,
    SyncCounts,
    SyncPosition,
    clear_position,
    import_rows,
    open_csv,
    save_position,
    sync_position,
    synced_contact,
    upsert_synced,
)
from orchestrator import audit
from orchestrator.errors import OpsError
from orchestrator.services import Services

log = structlog.get_logger(__name__)

# How often the progress callback hears of the lines read: often enough for a bar, rarely enough to cost nothing.
PROGRESS_EVERY = 1000
# The audit event names the first bad lines; the operator gets them all on the command line.
AUDITED_BAD_LINES = 50
STRIPE = "stripe"
# Stripe's largest page: the fewest list calls (each customer's subscriptions are one more call).
STRIPE_PAGE = 100


class ImportSummary(BaseModel):
    file: str
    inserted: int
    updated: int
    unchanged: int
    skipped: list[BadRow]
    # (column, the field it went to, or "attribute"), in the file's order.
    columns: list[tuple[str, str]]


def count_lines(path: Path) -> int:
    """The file's lines, for a progress bar's total (a record with a quoted line break counts each line)."""
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def import_csv(services: Services, path: Path, *, actor: str,
               progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Import the contacts of a people CSV: new addresses added, known ones updated, bad rows skipped and listed.

    The import and its audit event are one transaction: a crash or a stop part-way leaves the contacts as they
    were, and importing again does the whole file. `progress` hears how many more lines were read, now and then.
    Raises BadFile when the file cannot be read as contacts at all (empty, no email column), OSError when it
    cannot be opened.
    """
    with open_csv(path) as stream:
        reader = ContactCsv(stream)
        skipped: list[BadRow] = []

        def good_rows() -> Iterator[ContactRow]:
            told = reader.lines_read
            for row in reader:
                if isinstance(row, BadRow):
                    skipped.append(row)
                else:
                    yield row
                if progress is not None and reader.lines_read - told >= PROGRESS_EVERY:
                    progress(reader.lines_read - told)
                    told = reader.lines_read
            if progress is not None and reader.lines_read > told:
                progress(reader.lines_read - told)

        now = services.now()
        with services.stores.pool.connection() as conn, conn.transaction():
            counts = import_rows(conn, good_rows(), now=now)
            audit.append(conn, actor=actor, kind="contacts.imported", at=now, payload={
                "file": path.name, **counts.model_dump(), "skipped": len(skipped),
                "bad_lines": [{"line": bad.line, "reason": bad.reason} for bad in skipped[:AUDITED_BAD_LINES]],
            })
    log.info("contacts.imported", file=path.name, **counts.model_dump(), skipped=len(skipped))
    return ImportSummary(file=path.name, **counts.model_dump(), skipped=skipped, columns=reader.header.describe())


class SyncSummary(BaseModel):
    counts: SyncCounts
    # The customer an interrupted sync went on after; None for a sync from the start.
    resumed_after: str | None


class NotOnStripe(OpsError):
    """The payments backend is the sandbox: there is no Stripe account to sync from."""


def sync_stripe(services: Services, *, actor: str, page_size: int = STRIPE_PAGE,
                progress: Callable[[SyncCounts], None] | None = None) -> SyncSummary:
    """Bring the operator's Stripe customers into the contacts, linked by Stripe id: new ones added, known ones
    (by Stripe id, else by email) updated; `progress` hears the counts so far after each page.

    Each page and the position it moves the sync to are one transaction, so a sync stopped part-way (Stripe
    unavailable, the process killed) goes on after its last finished page when run again; the finished sync's
    audit event, with the counts of all its runs, and the end of its position are one more. Raises NotOnStripe
    when payments are the sandbox, and the connector's errors (ConnectorUnavailable, CredentialsRejected) as
    they come, with the finished pages kept.
    """
    payments = services.payments
    if not isinstance(payments, StripePayments):
        raise NotOnStripe("OPSOS_PAYMENTS is not stripe")
    pool = services.stores.pool
    with pool.connection() as conn:
        position = sync_position(conn, STRIPE)
    resumed_after = position.after if position is not None else None
    counts = position.counts if position is not None else SyncCounts()
    after = resumed_after
    while True:
        page = payments.customers(after=after, limit=page_size)
        contacts = []
        for customer in page.items:
            # The newest first: a customer with a cancelled plan and a new one is paying for the new one.
            subscriptions = payments.subscriptions(customer=customer.id, status="all").items
            contact = synced_contact(customer, subscriptions)
            if contact is not None:
                contacts.append(contact)
        now = services.now()
        with pool.connection() as conn, conn.transaction():
            done = upsert_synced(conn, contacts, now=now)
            counts = counts.plus(done.model_copy(update={"pages": 1, "skipped": len(page.items) - len(contacts)}))
            if page.has_more and page.after is not None:
                save_position(conn, STRIPE, SyncPosition(after=page.after, counts=counts), now=now)
            else:
                clear_position(conn, STRIPE)
                audit.append(conn, actor=actor, kind="contacts.synced", at=now, payload={
                    "source": STRIPE, **counts.model_dump(), "resumed_after": resumed_after})
        if progress is not None:
            progress(counts)
        if not page.has_more or page.after is None:
            break
        after = page.after
    log.info("contacts.synced", source=STRIPE, **counts.model_dump(), resumed_after=resumed_after)
    return SyncSummary(counts=counts, resumed_after=resumed_after)
