"""Contacts into opsos: a people CSV imported into the CRM in one transaction with its audit event."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
from pydantic import BaseModel

from connectors import BadRow, ContactCsv, ContactRow, import_rows, open_csv
from orchestrator import audit
from orchestrator.services import Services

log = structlog.get_logger(__name__)

# How often the progress callback hears of the lines read: often enough for a bar, rarely enough to cost nothing.
PROGRESS_EVERY = 1000
# The audit event names the first bad lines; the operator gets them all on the command line.
AUDITED_BAD_LINES = 50


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
