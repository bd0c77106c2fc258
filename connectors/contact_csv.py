"""Reading a people CSV (pure): the header mapped onto contact fields, each row checked, a bad row told by its line.

A file comes from wherever the operator kept their customers (a spreadsheet, a newsletter tool, an old CRM),
so headers are matched loosely ("E-mail", "Full name", "MRR"), columns opsos has no field for are kept as
attributes, and one bad row never stops the rest: it is reported with its line number and skipped.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from itertools import chain
from pathlib import Path
from typing import Literal, TextIO

from pydantic import BaseModel, Field

from connectors.errors import BadFile

Status = Literal["active", "lapsed", "lead"]
Mapped = Literal["email", "name", "first_name", "last_name", "plan", "status", "monthly_cents", "tags", "notes"]

# Header spellings per field, compared after lower-casing and dropping everything but letters and digits.
SPELLINGS: dict[Mapped, tuple[str, ...]] = {
    "email": ("email", "emailaddress", "mail", "customeremail", "contactemail"),
    "name": ("name", "fullname", "customer", "customername", "contact", "contactname", "displayname"),
    "first_name": ("firstname", "givenname", "first"),
    "last_name": ("lastname", "surname", "familyname", "last"),
    "plan": ("plan", "planname", "tier", "subscription", "subscriptionplan", "product", "package"),
    "status": ("status", "state", "subscriptionstatus", "customerstatus"),
    "monthly_cents": ("monthlyamount", "mrr", "monthly", "amount", "price", "monthlyprice", "monthlyrevenue",
                      "monthlyfee"),
    "tags": ("tags", "tag", "labels", "label", "segments", "groups"),
    "notes": ("notes", "note", "comments", "comment", "description"),
}
_FIELD_OF = {spelling: field for field, spellings in SPELLINGS.items() for spelling in spellings}

# What other tools call a status, in opsos's three. An unknown word is a bad row rather than a guess: calling a
# paying customer "lapsed" would put them in the next win-back campaign.
STATUS_WORDS: dict[str, Status] = {
    **dict.fromkeys(("active", "customer", "paying", "paid", "subscribed", "current", "trialing", "trial",
                     "past_due", "pastdue"), "active"),
    **dict.fromkeys(("lapsed", "canceled", "cancelled", "churned", "inactive", "expired", "former", "unpaid",
                     "ended"), "lapsed"),
    **dict.fromkeys(("lead", "prospect", "free", "none", "subscriber", "newsletter"), "lead"),
}
EMAIL = re.compile(r"[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\".]{2,}")
# $1,200.50 · 49 · 49.9 · €49,90 (a decimal comma) · 49 USD
AMOUNT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{1,2})?|\d+,\d{1,2}")
CURRENCY = re.compile(r"^[$€£]|\s*(?:usd|eur|gbp)$|^(?:usd|eur|gbp)\s*", re.IGNORECASE)
MAX_CENTS = 2**31 - 1
TAG_SEPARATORS = re.compile(r"[,;|]")
DELIMITERS = (",", ";", "\t")


class ContactRow(BaseModel):
    """One good row: None where the file has no such column or the cell is empty (opsos keeps what it has)."""

    line: int
    email: str
    name: str | None = None
    plan: str | None = None
    status: Status | None = None
    monthly_cents: int | None = None
    tags: list[str] | None = None
    notes: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


class BadRow(BaseModel):
    line: int
    reason: str


class Header(BaseModel):
    names: list[str]
    fields: dict[int, Mapped]
    # Columns opsos has no field for, by position: their cells become attributes under the header's own name.
    attributes: dict[int, str]

    def describe(self) -> list[tuple[str, str]]:
        """(column, where it goes) for each column, in the file's order."""
        labels = {"monthly_cents": "monthly amount", "first_name": "first name", "last_name": "last name"}
        return [(name or f"column {i + 1}", labels.get(self.fields.get(i) or "", self.fields.get(i) or "attribute"))
                for i, name in enumerate(self.names)]


def normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def read_header(cells: list[str]) -> Header:
    """The header row mapped onto fields. Raises BadFile without an email column, or with two columns for one field."""
    fields: dict[int, Mapped] = {}
    attributes: dict[int, str] = {}
    for index, raw in enumerate(cells):
        name = raw.strip()
        problem = _cell_problem(f"{index + 1}", name)
        if problem:
            raise BadFile(f"the header row is {problem.replace('column', 'column number')}")
        field = _FIELD_OF.get(normalise(name))
        if field is None:
            attributes[index] = name or f"column {index + 1}"
            continue
        if field in fields.values():
            first = next(cells[i].strip() for i, f in fields.items() if f == field)
            raise BadFile(f"the header has two columns for {field.replace('_', ' ')}: “{first}” and “{name}”; "
                          "rename one of them")
        fields[index] = field
    if "email" not in fields.values():
        raise BadFile("the header row has no email column (it may be called "
                      f"{', '.join(SPELLINGS['email'])}); contacts are matched by their email address")
    return Header(names=[c.strip() for c in cells], fields=fields, attributes=attributes)


def parse_amount(text: str) -> int:
    """A monthly amount in cents from what a spreadsheet shows ("$1,200.50", "49", "49,90 EUR"); raises ValueError."""
    bare = CURRENCY.sub("", text.strip()).strip()
    if not AMOUNT.fullmatch(bare):
        raise ValueError(f"monthly amount “{text.strip()[:40]}” is not an amount like 49 or 1,200.50")
    decimal_comma = "," in bare and "." not in bare and len(bare.rsplit(",", 1)[1]) <= 2
    try:
        value = Decimal(bare.replace(",", ".") if decimal_comma else bare.replace(",", ""))
    except InvalidOperation as e:
        raise ValueError(f"monthly amount “{text.strip()[:40]}” is not a number") from e
    cents = int(value * 100)
    if cents > MAX_CENTS:
        raise ValueError(f"monthly amount “{text.strip()[:40]}” is too large")
    return cents


# Read with surrogateescape, an undecodable byte arrives as a lone surrogate; PostgreSQL's text cannot hold NUL,
# and one such cell would fail the whole import at the insert.
_UNSTORABLE = re.compile("[\udc80-\udcff\x00]")


def _cell_problem(name: str, cell: str) -> str | None:
    found = _UNSTORABLE.search(cell)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"a NUL character in column “{name}”"
    return f"not UTF-8 (byte 0x{ord(found.group()) - 0xDC00:02x} in column “{name}”); save the file as UTF-8"


def read_row(header: Header, cells: list[str], line: int) -> ContactRow | BadRow:
    """One data row checked against the header (pure): the row, or why it is skipped."""
    if len(cells) != len(header.names):
        return BadRow(line=line, reason=f"{len(cells)} columns where the header has {len(header.names)}")
    if _UNSTORABLE.search("".join(cells)):
        for index, cell in enumerate(cells):
            problem = _cell_problem(header.names[index] or f"column {index + 1}", cell)
            if problem:
                return BadRow(line=line, reason=problem)
    given = {field: cells[index].strip() for index, field in header.fields.items() if cells[index].strip()}
    email = given.get("email", "")
    if not email:
        return BadRow(line=line, reason="no email address")
    if not EMAIL.fullmatch(email):
        return BadRow(line=line, reason=f"“{email[:80]}” is not an email address")
    try:
        cents = parse_amount(given["monthly_cents"]) if "monthly_cents" in given else None
    except ValueError as e:
        return BadRow(line=line, reason=str(e))
    status = None
    if "status" in given:
        status = STATUS_WORDS.get(given["status"].lower().replace(" ", "_").replace("-", "_"))
        if status is None:
            return BadRow(line=line, reason=f"status “{given['status'][:40]}” is not active, lapsed or lead "
                                            "(nor a word for one, like cancelled or trialing)")
    name = given.get("name") or " ".join(given[f] for f in ("first_name", "last_name") if f in given) or None
    tags = [t.strip() for t in TAG_SEPARATORS.split(given["tags"]) if t.strip()] if "tags" in given else None
    return ContactRow(
        line=line, email=email, name=name, plan=given.get("plan"), status=status, monthly_cents=cents,
        tags=list(dict.fromkeys(tags)) if tags is not None else None, notes=given.get("notes"),
        attributes={header.attributes[i]: cells[i].strip() for i in header.attributes if cells[i].strip()},
    )


def open_csv(path: Path) -> TextIO:
    """The file as `ContactCsv` reads it: utf-8-sig drops the byte-order mark spreadsheets write, and
    surrogateescape lets an undecodable byte fail only its own row; newline="" is what `csv` asks for."""
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")


class ContactCsv:
    """The rows of a people CSV, read lazily from lines of text (a file opened with `open_csv`).

    The header is read at once (BadFile for an empty file or one without an email column); iterating yields
    a ContactRow or a BadRow per record, by the line it starts on. The same address twice: the first line
    wins and the later one is a bad row, since one import cannot say which of two versions is right.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        lines = iter(lines)
        first = next(lines, "")
        if not first.strip():
            raise BadFile("the file is empty: the first line must be a header row (email, name, plan, …)")
        delimiter = max(DELIMITERS, key=first.count)
        self._reader = csv.reader(chain([first], lines), delimiter=delimiter)
        self.header = read_header(next(self._reader))
        self._seen: dict[str, int] = {}

    @property
    def lines_read(self) -> int:
        return self._reader.line_num

    def __iter__(self) -> Iterator[ContactRow | BadRow]:
        while True:
            start = self._reader.line_num + 1
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield BadRow(line=start, reason=f"not readable as CSV ({e})")
                continue
            if not any(cell.strip() for cell in cells):
                continue
            row = read_row(self.header, cells, start)
            if isinstance(row, ContactRow):
                first = self._seen.setdefault(row.email.lower(), start)
                if first != start:
                    row = BadRow(line=start, reason=f"{row.email} is already on line {first}; this line skipped")
            yield row
