"""Chat commands: the few words every front end shares (status, pause 3, approve a1b2…), parsed purely."""
from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel


class Command(StrEnum):
    REQUEST = "request"
    HELP = "help"
    STATUS = "status"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    APPROVE = "approve"
    REJECT = "reject"
    WHY = "why"


class ChatCommand(BaseModel):
    command: Command
    argument: str = ""


_RUN_COMMANDS = {Command.PAUSE, Command.RESUME, Command.CANCEL}
_APPROVAL_COMMANDS = {Command.APPROVE, Command.REJECT, Command.WHY}
_WORD = re.compile(r"^/?(\w+)\s*(.*)$", re.DOTALL)


def parse(text: str) -> ChatCommand:
    """A command when the first word is one and its argument fits; anything else is a request in words."""
    stripped = text.strip()
    match = _WORD.match(stripped)
    if not match:
        return ChatCommand(command=Command.REQUEST, argument=stripped)
    word, rest = match.group(1).lower(), match.group(2).strip()
    try:
        command = Command(word)
    except ValueError:
        return ChatCommand(command=Command.REQUEST, argument=stripped)
    if command in (Command.HELP,) and not rest:
        return ChatCommand(command=command)
    if command is Command.STATUS and (not rest or rest.lstrip("#").isdigit()):
        return ChatCommand(command=command, argument=rest.lstrip("#"))
    if command in _RUN_COMMANDS and rest.lstrip("#").isdigit():
        return ChatCommand(command=command, argument=rest.lstrip("#"))
    if command in _APPROVAL_COMMANDS and re.fullmatch(r"a[0-9a-f]{10}", rest):
        return ChatCommand(command=command, argument=rest)
    return ChatCommand(command=Command.REQUEST, argument=stripped)
