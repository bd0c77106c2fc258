"""Reading one received email (RFC 5322 bytes): who sent it, what it answers, its new text, its attachments' names.

A message that cannot be read faithfully is `Unreadable` with the reason, never guessed at: text in no charset
it declares (nor UTF-8), a message with no sender, a body over the size limit. Attachments are never kept;
only their names and sizes are.
"""
from __future__ import annotations

import re
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Literal

from pydantic import BaseModel

# What a memory keeps of one email's own words; the rest of a long letter is rarely what matters later.
TEXT_LIMIT = 4000
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# "On Tue, 3 Dec 2024 at 10:00, opsos <opsos@example.com> wrote:" and its common forms open the quoted original.
QUOTE_OPENER = re.compile(r"^\s*(On .{0,200}wrote:|-----\s*Original Message\s*-----|From: .+)\s*$", re.IGNORECASE)

Reason = Literal["too_large", "malformed", "undecodable"]


class AttachmentNote(BaseModel):
    filename: str
    content_type: str
    size: int


class InboundEmail(BaseModel):
    message_id: str | None
    sender: str
    sender_name: str
    subject: str
    sent_at: datetime | None
    # Every Message-ID this one answers: In-Reply-To first, then References newest first.
    answers: list[str]
    text: str
    attachments: list[AttachmentNote]


class Unreadable(BaseModel):
    """A message recorded but not read: why, and whatever of its headers could be read, for the record."""

    reason: Reason
    detail: str
    message_id: str | None = None
    sender: str = ""


class Undecodable(ValueError):
    """Text in a charset it does not declare (or an unknown one), which would be read wrong."""


def read_email(raw: bytes) -> InboundEmail | Unreadable:
    """The message in `raw`, or why it cannot be read (pure; never raises on bad input)."""
    try:
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        message_id, sender, sender_name = _identity(message)
        if not sender:
            return Unreadable(reason="malformed", detail="no sender address", message_id=message_id)
        return InboundEmail(message_id=message_id, sender=sender, sender_name=sender_name,
                            subject=_text_header(message, "Subject"), sent_at=_date(message),
                            answers=_answers(message), text=_body(message), attachments=_attachments(message))
    except Undecodable as error:
        return Unreadable(reason="undecodable", detail=str(error), **_best_effort(raw))
    # The email package raises a zoo of errors on broken MIME (header parsing, boundaries, encodings).
    except Exception as error:
        return Unreadable(reason="malformed", detail=f"{type(error).__name__}: {error}"[:300], **_best_effort(raw))


def read_header(header: bytes, *, size: int, limit: int) -> Unreadable:
    """A message too large to fetch, known by its header only (pure)."""
    found = _best_effort(header + b"\r\n\r\n")
    return Unreadable(reason="too_large", detail=f"{size} bytes, over the {limit}-byte limit", **found)


def new_text(text: str, *, limit: int = TEXT_LIMIT) -> str:
    """The part of a reply its sender wrote, at most `limit` characters: quoted lines and the quoted original
    dropped (pure)."""
    kept: list[str] = []
    for line in text.splitlines():
        if QUOTE_OPENER.match(line):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line.rstrip())
    return "\n".join(kept).strip()[:limit]


def _best_effort(raw: bytes) -> dict[str, str | None]:
    try:
        message = message_from_bytes(raw, policy=policy.compat32)
        ids = MESSAGE_ID.findall(str(message.get("Message-ID", "")))
        addresses = getaddresses([str(message.get("From", ""))])
        return {"message_id": ids[0] if ids else None,
                "sender": next((a.lower() for _, a in addresses if "@" in a), "")}
    except Exception:  # only for the record: the reason is already known
        return {"message_id": None, "sender": ""}


def _identity(message: EmailMessage) -> tuple[str | None, str, str]:
    ids = MESSAGE_ID.findall(_text_header(message, "Message-ID"))
    addresses = getaddresses([_text_header(message, "From")])
    name, address = next(((n, a) for n, a in addresses if "@" in a), ("", ""))
    return (ids[0] if ids else None), address.strip().lower(), name.strip()


def _text_header(message: Message, name: str) -> str:
    raw = next((value for key, value in message.raw_items() if key.lower() == name.lower()), None)
    if raw is None:
        return ""
    # Raw 8-bit bytes in a header are kept as surrogates, and parsed into U+FFFD: UTF-8 (RFC 6532) is the one
    # charset they may be taken to be in, and anything else would be read wrong.
    if any("\udc80" <= ch <= "\udcff" for ch in raw):
        try:
            decoded = raw.encode("ascii", "surrogateescape").decode("utf-8")
        except UnicodeDecodeError as error:
            raise Undecodable(f"the {name} header is not UTF-8") from error
        return str(policy.default.header_factory(name, decoded))
    return str(message.get(name, ""))


def _answers(message: EmailMessage) -> list[str]:
    replying_to = MESSAGE_ID.findall(_text_header(message, "In-Reply-To"))
    references = list(reversed(MESSAGE_ID.findall(_text_header(message, "References"))))
    return list(dict.fromkeys([*replying_to, *references]))


def _date(message: EmailMessage) -> datetime | None:
    try:
        value = _text_header(message, "Date")
        return parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    declared = part.get_content_charset()
    try:
        return data.decode(declared or "us-ascii")
    except LookupError as error:
        raise Undecodable(f"unknown charset {declared!r}") from error
    except UnicodeDecodeError as error:
        if declared not in (None, "us-ascii", "ascii"):
            raise Undecodable(f"text is not in its declared charset {declared}") from error
    # Undeclared 8-bit text: many clients send UTF-8 without saying so; anything else would be read wrong.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Undecodable("text with no charset declared is not UTF-8") from error


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _decoded(part)
    if part.get_content_subtype() == "html":
        text = _html_text(text)
    return text


def _attachments(message: EmailMessage) -> list[AttachmentNote]:
    body = message.get_body(preferencelist=("plain", "html"))
    notes = []
    for part in message.walk():
        if part.is_multipart() or part is body:
            continue
        filename = part.get_filename()
        if filename or part.get_content_disposition() == "attachment":
            payload = part.get_payload(decode=True)
            notes.append(AttachmentNote(filename=filename or "(unnamed)", content_type=part.get_content_type(),
                                        size=len(payload) if isinstance(payload, bytes) else 0))
    return notes


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _TextOf()
    parser.feed(html)
    return re.sub(r"\n{3,}", "\n\n", "".join(parser.parts)).strip()
