"""The console renderer: a Message as terminal text, with the buttons written as the words that press them."""
from __future__ import annotations

import textwrap

from orchestrator import Message

WIDTH = 92


class ConsoleRenderer:
    """Plain text with the buttons written as the words that press them."""

    def render(self, *, message: Message) -> str:
        lines = [f"opsos ▸ {message.title}"]
        if message.text:
            lines += textwrap.wrap(message.text, WIDTH, initial_indent="        ", subsequent_indent="        ")
        for section in message.sections:
            if section.title:
                lines.append(f"        ── {section.title}")
            for paragraph in section.text.splitlines():
                lines += textwrap.wrap(paragraph, WIDTH, initial_indent="        │ ",
                                       subsequent_indent="        │ ") or ["        │"]
            lines += [f"        • {fact.label}: {fact.value}" for fact in section.facts]
        if message.actions and message.approval_id:
            choices = "   ".join(f"[{action.label.lower().rstrip('?')}]" for action in message.actions)
            lines.append(f"        {choices}   (type the word)")
        elif message.actions:
            lines += [f"        [{n}] {action.label}" for n, action in enumerate(message.actions, start=1)]
            lines.append("        (type the number)")
        return "\n".join(lines)
