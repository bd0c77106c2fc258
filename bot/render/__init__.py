"""Renderers: one channel-neutral Message in, what one chat platform displays out."""
from __future__ import annotations

from typing import Protocol, TypeVar

from bot.render.blockkit import BlockKitRenderer, SlackMessage
from bot.render.console import ConsoleRenderer
from bot.render.telegram import TelegramMessage, TelegramRenderer
from orchestrator import Message

Rendered = TypeVar("Rendered", covariant=True)


class Renderer(Protocol[Rendered]):
    """Adding a channel means adding one of these (and an adapter), nothing else."""

    def render(self, *, message: Message) -> Rendered: ...


__all__ = ["BlockKitRenderer", "ConsoleRenderer", "Renderer", "SlackMessage", "TelegramMessage", "TelegramRenderer"]
