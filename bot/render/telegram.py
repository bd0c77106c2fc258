"""The Telegram renderer: a Message as HTML texts within Telegram's 4,096 characters, plus an inline keyboard."""
from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from orchestrator import Fact, Message, MessageKind

MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
PARSE_MODE = "HTML"
_EMOJI = {MessageKind.ALERT: "⚠️ ", MessageKind.APPROVAL_REQUEST: "✋ "}


@dataclass
class TelegramMessage:
    """One Message as Telegram messages: send `parts` in order; the keyboard goes under the last one."""

    parts: list[str]
    keyboard: InlineKeyboardMarkup | None = None
    parse_mode: str = PARSE_MODE


def _escaped_slices(raw: str, room: int) -> Iterator[str]:
    """Escaped pieces of `raw`, each at most `room` characters: an entity like &amp; is never cut in two."""
    piece: list[str] = []
    size = 0
    for char in raw:
        escaped = html.escape(char)
        if size + len(escaped) > room and piece:
            yield "".join(piece)
            piece, size = [], 0
        piece.append(escaped)
        size += len(escaped)
    if piece:
        yield "".join(piece)


def _plain(text: str, limit: int) -> list[str]:
    lines: list[str] = []
    for line in text.splitlines():
        lines += list(_escaped_slices(line, limit)) or [""]
    return lines


def _bold(text: str, limit: int) -> list[str]:
    # Each slice carries its own tags, so a split never leaves a <b> open in one message.
    return [f"<b>{piece}</b>" for piece in _escaped_slices(text, limit - len("<b></b>"))]


def _fact(fact: Fact, limit: int) -> list[str]:
    line = f"• <b>{html.escape(fact.label)}</b>: {html.escape(fact.value)}"
    if len(line) <= limit:
        return [line]
    return ["• " + part for part in _bold(fact.label + ":", limit - 2)] + _plain(fact.value, limit)


def _pack(lines: list[str], limit: int) -> list[str]:
    """Join lines into as few texts as fit; a message never starts or ends with blank lines."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        extra = len(line) + (1 if current else 0)
        if current and size + extra > limit:
            parts.append("\n".join(current).strip("\n"))
            current, size = [], 0
            extra = len(line)
        if not current and not line:
            continue
        current.append(line)
        size += extra
    if current:
        parts.append("\n".join(current).strip("\n"))
    return [part for part in parts if part.strip()]


class TelegramRenderer:
    def __init__(self, *, limit: int = MAX_TEXT) -> None:
        self.limit = limit

    def render(self, *, message: Message) -> TelegramMessage:
        limit = self.limit
        lines = _bold(_EMOJI.get(message.kind, "") + message.title, limit)
        if message.text:
            lines += _plain(message.text, limit)
        for section in message.sections:
            lines.append("")
            if section.title:
                lines += _bold(section.title, limit)
            if section.text:
                lines += _plain(section.text, limit)
            for fact in section.facts:
                lines += _fact(fact, limit)
        return TelegramMessage(parts=_pack(lines, limit) or [html.escape(message.title)[:limit] or "…"],
                               keyboard=self.keyboard(message))

    def keyboard(self, message: Message) -> InlineKeyboardMarkup | None:
        """One row of buttons; each carries the action's short value, resolved server-side."""
        if not message.actions:
            return None
        for action in message.actions:
            if len(action.value.encode()) > MAX_CALLBACK_DATA:
                raise ValueError(f"button value {action.value!r} is over Telegram's {MAX_CALLBACK_DATA} bytes")
        return InlineKeyboardMarkup(
            [[InlineKeyboardButton(action.label, callback_data=action.value) for action in message.actions]]
        )
