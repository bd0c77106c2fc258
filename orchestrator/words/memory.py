"""Memory in chat: remembered, recalled, forgotten, and the chain behind an action."""
from __future__ import annotations

from orchestrator.messages import Fact, Message, MessageKind, Section


def remembered(memory_id: int, subject: str, outcome: str) -> Message:
    how = {"inserted": "Remembered", "merged": "Already knew that; merged", "versioned": "Updated"}[outcome]
    return Message(kind=MessageKind.NOTICE, title=f"{how}: memory #{memory_id} about {subject}.")


def recalled(question: str, found: list[tuple[int, str, str, str, float]]) -> Message:
    if not found:
        return Message(kind=MessageKind.NOTICE, title=f"I remember nothing about “{question[:80]}”.")
    return Message(
        kind=MessageKind.NOTICE,
        title=f"What I remember about “{question[:80]}”",
        sections=[Section(facts=[
            Fact(label=f"#{memory_id} {subject}", value=f"{text} (from {source or 'unknown'})")
            for memory_id, subject, text, source, _score in found
        ])],
    )


def forgotten(memory_id: int, versions: int) -> Message:
    return Message(kind=MessageKind.NOTICE,
                   title=f"Forgotten: memory #{memory_id} ({versions} version{'s' if versions != 1 else ''}).")


def action_chain(key: str, lines: list[tuple[str, str]]) -> Message:
    return Message(
        kind=MessageKind.EXPLANATION,
        title=f"Why this happened: {key}",
        sections=[Section(facts=[Fact(label=label, value=value) for label, value in lines])],
    )
