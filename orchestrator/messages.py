"""The channel-neutral message model: what opsos says to the operator, before any channel renders it."""
from __future__ import annotations

import base64
from enum import StrEnum

from pydantic import BaseModel, Field


class MessageKind(StrEnum):
    ACK = "ack"
    APPROVAL_REQUEST = "approval_request"
    APPROVAL_DECIDED = "approval_decided"
    EXPLANATION = "explanation"
    NOTICE = "notice"
    ALERT = "alert"
    REPORT = "report"
    STATUS = "status"
    HELP = "help"
    REFUSAL = "refusal"


class Style(StrEnum):
    PRIMARY = "primary"
    DANGER = "danger"
    DEFAULT = "default"


class Fact(BaseModel):
    label: str
    value: str


class Section(BaseModel):
    title: str = ""
    text: str = ""
    facts: list[Fact] = Field(default_factory=list)


class Action(BaseModel):
    """A button. `value` is opaque and short (Telegram allows 64 bytes), resolved server-side."""

    label: str
    value: str
    style: Style = Style.DEFAULT


class Attachment(BaseModel):
    """A file sent with a message (the digest's budget chart). Base64 text, so the outbox row stays plain JSON."""

    filename: str
    mime: str = "image/png"
    title: str = ""
    data_b64: str

    @classmethod
    def of(cls, data: bytes, *, filename: str, mime: str = "image/png", title: str = "") -> Attachment:
        return cls(filename=filename, mime=mime, title=title, data_b64=base64.b64encode(data).decode("ascii"))

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.data_b64)


class Message(BaseModel):
    kind: MessageKind
    title: str
    text: str = ""
    sections: list[Section] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    run_id: int | None = None
    approval_id: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)

    def plain_text(self) -> str:
        """The whole message as plain lines: for logs, console and notification previews."""
        lines = [self.title]
        if self.text:
            lines.append(self.text)
        for section in self.sections:
            if section.title:
                lines.append(f"— {section.title}")
            if section.text:
                lines.append(section.text)
            lines.extend(f"  {fact.label}: {fact.value}" for fact in section.facts)
        return "\n".join(lines)
