"""Buttons' wire format: the short value a button carries (`approve:a1b2c3d4e5`), built and read here only.

A value is `<verb>:<argument>`, small enough for Telegram's 64-byte callback data; Slack gets the verb
as the action id too. Pressing a button means the same as typing `<verb> <argument>`.
"""
from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel

from orchestrator.approvals import Decision

# An approval's id (see `approvals._new_id`): short and opaque, resolved by the control plane.
APPROVAL_ID = r"a[0-9a-f]{10}"
# A "Did you mean …?" choice: the kept request's token and the index of the kind offered.
CHOICE = r"[0-9a-f]{10}:[0-9]"
# A schedule offered in chat and not yet confirmed (see `chat.schedules`).
PROPOSAL = r"s[0-9a-f]{10}"
# ASCII digits only: `\d` would also take "٣", which no run number is.
RUN_ID = r"[0-9]{1,12}"


class Verb(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    WHY = "why"
    RESUME = "resume"
    CANCEL = "cancel"
    CHOOSE = "choose"
    CONFIRM = "confirm"
    # Outreach for the top leads of a lead-qualification run (its id).
    OUTREACH = "outreach"


_ARGUMENT = {Verb.APPROVE: APPROVAL_ID, Verb.REJECT: APPROVAL_ID, Verb.WHY: APPROVAL_ID,
             Verb.RESUME: RUN_ID, Verb.CANCEL: RUN_ID, Verb.CHOOSE: CHOICE,
             Verb.CONFIRM: PROPOSAL,
             Verb.OUTREACH: RUN_ID}
_VALUE = re.compile(r"^(" + "|".join(verb.value for verb in Verb) + r"):(.+)$")
_APPROVAL_BUTTON = re.compile(rf"^(?:approve|reject|why):({APPROVAL_ID})$")


class Pressed(BaseModel):
    """A button read back: what it asks for and of what (an approval id, a run id, a choice)."""

    verb: Verb
    argument: str

    @property
    def decision(self) -> Decision | None:
        """Approve and Reject decide an approval; every other button (None) is answered like its typed command."""
        return {Verb.APPROVE: Decision.APPROVED, Verb.REJECT: Decision.REJECTED}.get(self.verb)

    def as_text(self) -> str:
        """The chat command this button stands for, e.g. `resume 3`."""
        return f"{self.verb.value} {self.argument}"


def value(verb: Verb, argument: object) -> str:
    return f"{verb.value}:{argument}"


def approve(approval_id: str) -> str:
    return value(Verb.APPROVE, approval_id)


def reject(approval_id: str) -> str:
    return value(Verb.REJECT, approval_id)


def why(approval_id: str) -> str:
    return value(Verb.WHY, approval_id)


def resume(run_id: int) -> str:
    return value(Verb.RESUME, run_id)


def cancel(run_id: int) -> str:
    return value(Verb.CANCEL, run_id)


def outreach(run_id: int) -> str:
    return value(Verb.OUTREACH, run_id)


def choose(token: str, index: int) -> str:
    return value(Verb.CHOOSE, f"{token}:{index}")


def confirm(proposal: str) -> str:
    return value(Verb.CONFIRM, proposal)


def read(data: str | None) -> Pressed | None:
    """The button `data` names, or None for data no button of ours carries (pure: forged data decides nothing)."""
    match = _VALUE.match(data or "")
    if not match:
        return None
    verb, argument = Verb(match.group(1)), match.group(2)
    if not re.fullmatch(_ARGUMENT[verb], argument):
        return None
    return Pressed(verb=verb, argument=argument)


def approval_of(data: str) -> str | None:
    """The approval a button acts on (`approve:a1b2…` → `a1b2…`); None for any other button."""
    match = _APPROVAL_BUTTON.match(data)
    return match.group(1) if match else None
