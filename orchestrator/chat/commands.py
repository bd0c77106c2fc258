"""Chat commands: the few words every front end shares (status, pause 3, approve a1b2…), parsed purely."""
from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel

from orchestrator.buttons import APPROVAL_ID, CHOICE, PROPOSAL
from orchestrator.schedules import timing


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
    SCHEDULE = "schedule"
    SCHEDULES = "schedules"
    CONFIRM = "confirm"
    PAUSE_SCHEDULE = "pause_schedule"
    RESUME_SCHEDULE = "resume_schedule"
    UNSCHEDULE = "unschedule"
    OUTREACH = "outreach"


class ChatCommand(BaseModel):
    command: Command
    argument: str = ""


# `outreach 12`: the ranked-list button of lead-qualification run 12 (words after it are a request).
_RUN_COMMANDS = {Command.PAUSE, Command.RESUME, Command.CANCEL, Command.OUTREACH}
# What may be handled again after a store error that can have come after its work committed (the answer lost, not
# the work): reads; a decision, whose repeat by the same operator is answered as its success; a choice, keyed by its
# suggestion. A request in words too, when it carries its delivery's dedupe key. The rest (pause, remember, forget,
# digest, a sign-in link) would be done a second time.
_REPEATABLE = frozenset({Command.HELP, Command.STATUS, Command.WHY, Command.RECALL, Command.REPLAY, Command.CONTACTS,
                         Command.CONTACT, Command.APPROVE, Command.REJECT, Command.CHOOSE,
                         Command.SCHEDULES, Command.CONFIRM, Command.OUTREACH, Command.WORKFLOWS})
_APPROVAL_COMMANDS = {Command.APPROVE, Command.REJECT, Command.WHY}
_NUMBER = re.compile(r"[0-9]{1,12}")
_SCHEDULE_NUMBER = re.compile(r"schedule\s+#?([0-9]{1,12})")
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


def repeatable(command: ChatCommand, *, keyed: bool) -> bool:
    """Whether handling `command` twice does what handling it once does (`keyed`: it carries a dedupe key)."""
    return command.command in _REPEATABLE or (keyed and command.command is Command.REQUEST)


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
        # "every Monday at 9 …", "0 9 * * 1 …": a schedule, read (or refused) by `timing`, never a request as it is.
        if timing.read(stripped) is not None:
            return ChatCommand(command=Command.SCHEDULE, argument=stripped)
        return ChatCommand(command=Command.REQUEST, argument=stripped)
    if command in (Command.HELP,) and not rest:
        return ChatCommand(command=command)
    if command in (Command.DIGEST, Command.DASHBOARD, Command.CONTACTS, Command.WORKFLOWS,
                   Command.SCHEDULES) and not rest:
        return ChatCommand(command=command)
    if command is Command.STATUS and (not rest or _is_number(rest.lstrip("#"))):
        return ChatCommand(command=command, argument=rest.lstrip("#"))
    if command in (Command.PAUSE, Command.RESUME) and (numbered := _SCHEDULE_NUMBER.fullmatch(rest.lower())):
        which = Command.PAUSE_SCHEDULE if command is Command.PAUSE else Command.RESUME_SCHEDULE
        return ChatCommand(command=which, argument=numbered.group(1))
    if command is Command.UNSCHEDULE and _is_number(rest.lstrip("#")):
        return ChatCommand(command=command, argument=rest.lstrip("#"))
    if command is Command.SCHEDULE and timing.read(rest) is not None:
        return ChatCommand(command=command, argument=rest)
    if command is Command.CONFIRM and re.fullmatch(PROPOSAL, rest):
        return ChatCommand(command=command, argument=rest)
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
