"""Chat commands: the few words every front end shares (status, pause 3, approve a1b2…), parsed purely."""
from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel

from orchestrator.buttons import APPROVAL_ID, CHOICE


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
    CHOOSE = "choose"
    REMEMBER = "remember"
    RECALL = "recall"
    FORGET = "forget"
    DIGEST = "digest"
    DASHBOARD = "dashboard"
    REPLAY = "replay"
    CONTACTS = "contacts"
    CONTACT = "contact"
    WORKFLOWS = "workflows"
    OUTREACH = "outreach"


class ChatCommand(BaseModel):
    command: Command
    argument: str = ""


# `outreach 12`: the ranked-list button of lead-qualification run 12 (words after it are a request).
_RUN_COMMANDS = {Command.PAUSE, Command.RESUME, Command.CANCEL, Command.OUTREACH}
_APPROVAL_COMMANDS = {Command.APPROVE, Command.REJECT, Command.WHY}
_NUMBER = re.compile(r"[0-9]{1,12}")
_WORD = re.compile(r"^/?(\w+)\s*(.*)$", re.DOTALL)
# "contact Ana", "contact ana@example.com", "contact c-12" look a contact up; "contact Ana about her renewal" or
# "contact lapsed customers to offer a discount" are requests in words, told apart by length and linking words.
_LOOKUP_WORDS = 3
_REQUEST_WORDS = frozenset({"about", "to", "for", "and", "re", "regarding", "with", "who", "that", "if", "on", "in",
                            "all", "every", "customers", "subscribers", "everyone"})


def is_contact_lookup(rest: str) -> bool:
    """Whether the words after "contact" name one contact rather than ask for something (pure)."""
    words = rest.split()
    return 0 < len(words) <= _LOOKUP_WORDS and not any(w.lower().strip(",.!?") in _REQUEST_WORDS for w in words)


def _is_number(text: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts "¹" or "٣", which int() then refuses mid-handler.
    return _NUMBER.fullmatch(text) is not None


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
    if command in (Command.DIGEST, Command.DASHBOARD, Command.CONTACTS, Command.WORKFLOWS) and not rest:
        return ChatCommand(command=command)
    if command is Command.STATUS and (not rest or _is_number(rest.lstrip("#"))):
        return ChatCommand(command=command, argument=rest.lstrip("#"))
    if command in _RUN_COMMANDS and _is_number(rest.lstrip("#")):
        return ChatCommand(command=command, argument=rest.lstrip("#"))
    # Only with a run number: "replay the spring campaign" is a request in words.
    if command is Command.REPLAY and _is_number(rest.lstrip("#")):
        return ChatCommand(command=command, argument=rest.lstrip("#"))
    if command in _APPROVAL_COMMANDS and re.fullmatch(APPROVAL_ID, rest):
        return ChatCommand(command=command, argument=rest)
    # "why did we email Ana?": the chain behind an action, found by what the operator remembers of it.
    if command is Command.WHY and rest:
        return ChatCommand(command=command, argument=rest)
    if command is Command.CHOOSE and re.fullmatch(CHOICE, rest):
        return ChatCommand(command=command, argument=rest)
    if command is Command.CONTACT and is_contact_lookup(rest):
        return ChatCommand(command=command, argument=rest)
    if command in (Command.REMEMBER, Command.RECALL) and rest:
        return ChatCommand(command=command, argument=rest)
    if command is Command.FORGET and (memory := re.fullmatch(r"(?:memory\s+)?#?(\d+)", rest)):
        return ChatCommand(command=command, argument=memory.group(1))
    return ChatCommand(command=Command.REQUEST, argument=stripped)
