"""What a pressed button asks for: its short value (`approve:a1b2c3d4e5`) read back as a chat command."""
from __future__ import annotations

from orchestrator import Decision
from orchestrator.commands import Command, parse

DECISIONS = {Command.APPROVE: Decision.APPROVED, Command.REJECT: Decision.REJECTED}


# Buttons answered like the typed command: a run's Resume / Cancel (the digest), "Did you mean …?".
RUN_BUTTONS = (Command.RESUME, Command.CANCEL, Command.CHOOSE)


def read(value: str | None) -> tuple[Command, str] | None:
    """(APPROVE | REJECT | WHY, approval id) or (RESUME | CANCEL, run id); None for data that names no button."""
    command = parse((value or "").replace(":", " ", 1))
    if command.command in (Command.APPROVE, Command.REJECT, Command.WHY, *RUN_BUTTONS):
        return command.command, command.argument
    return None


__all__ = ["DECISIONS", "RUN_BUTTONS", "Command", "read"]
