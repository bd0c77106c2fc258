"""The mailbox in words: a customer's reply told in chat, an email kept as a memory, a mailbox that cannot be read."""
from __future__ import annotations

from datetime import datetime

from connectors import AttachmentNote
from orchestrator.messages import Fact, Message, MessageKind, Section

# A chat notification shows the first line or so; the whole reply is in the message's text.
PREVIEW_CHARS = 160


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, round(size / 1024))} KB"


def attachments_line(attachments: list[AttachmentNote]) -> str:
    """'invoice.pdf (120 KB), photo.jpg (2.1 MB)': names and sizes, never the contents."""
    return ", ".join(f"{a.filename} ({_size(a.size)})" for a in attachments)


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1].rstrip() + "…"


def reply_received(*, who: str, replied_to: str, run_id: int | None, subject: str, text: str,
                   attachments: list[AttachmentNote]) -> Message:
    """'Ana Souza replied to the win-back campaign: …', with the whole reply below the title."""
    facts = [Fact(label="Subject", value=subject or "(none)")]
    if run_id is not None:
        facts.append(Fact(label="Run", value=f"#{run_id}"))
    if attachments:
        facts.append(Fact(label="Attached (not kept)", value=attachments_line(attachments)))
    return Message(
        kind=MessageKind.NOTICE,
        title=f"{who} replied to the {replied_to}: {_preview(text) or '(no text)'}",
        text=text,
        sections=[Section(facts=facts)],
        run_id=run_id,
    )


def interaction_text(*, who: str, address: str, sent_at: datetime | None, subject: str, text: str,
                     attachments: list[AttachmentNote], replied_to: str | None) -> str:
    """What a customer's email is remembered as: who wrote, when, about what, in their own new words."""
    when = f" on {sent_at:%Y-%m-%d}" if sent_at is not None else ""
    how = f"replied to the {replied_to}" if replied_to else "emailed"
    lines = [f"{who} <{address}> {how}{when}: “{subject or '(no subject)'}”", text or "(no text)"]
    if attachments:
        lines.append(f"Attached (not kept): {attachments_line(attachments)}")
    return "\n".join(lines)


def mailbox_unreadable(*, folder: str, error: str) -> Message:
    return Message(
        kind=MessageKind.ALERT,
        title=f"I cannot read the mailbox ({folder}); customer emails are waiting there, not lost.",
        text=f"{error}\nCheck OPSOS_IMAP_HOST, OPSOS_IMAP_USER and OPSOS_IMAP_PASSWORD; I try again at every poll "
             "and read everything since the last message I read.",
    )


def reply_chain(who: str, lines: list[tuple[str, str]]) -> Message:
    """The answer to "why did Ana reply?": her reply, the email it answered, and the run and request behind it."""
    return Message(
        kind=MessageKind.EXPLANATION,
        title=f"Why {who} replied: what they answered, and why opsos sent it",
        sections=[Section(facts=[Fact(label=label, value=value) for label, value in lines])],
    )
