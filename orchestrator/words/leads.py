"""What the operator is told about lead qualification: the ranked list, a missing profile, outreach started."""
from __future__ import annotations

from typing import Any

from orchestrator import buttons
from orchestrator.messages import Action, Message, MessageKind, Section, Style
from orchestrator.words.common import plural


def ranked_list(heading: str, ranked: list[dict[str, Any]], *, top: int, run_id: int,
                about: str | None) -> Message:
    """Top first, a line each (score and reason), and a button that starts outreach for the first `top`."""
    lines = [f"{n}. {lead['name']} ({lead['email']}): {lead['score']}: {lead['reason']}"
             for n, lead in enumerate(ranked, start=1)]
    where = f" from {about}" if about else ""
    text = "\n".join(lines) if lines else f"There are no leads{where} to score."
    actions = [Action(label=f"Start outreach for the top {top}", value=buttons.outreach(run_id), style=Style.PRIMARY)] \
        if ranked and top else []
    return Message(kind=MessageKind.REPORT, title=heading, sections=[Section(text=text)], actions=actions,
                   run_id=run_id)


def policy_missing(subject: str, ask: str) -> Message:
    """No policy memory under `subject`: what it is for, and how to give it."""
    return Message(kind=MessageKind.NOTICE, title=f"I need your {subject} first",
                   text=f"{ask}\nTell me with: remember {subject}: <in your words>, then ask again.")


def outreach_request(email: str, about: str | None) -> str:
    """The request in words an outreach intent for a ranked lead carries (read by the outreach workflow)."""
    return f"write a personal email to {email} about following up{f' on the {about}' if about else ''}"


def outreach_started(started: int, already: int) -> Message:
    if not started:
        return Message(kind=MessageKind.ACK, title=f"Outreach was already started for {plural(already, 'lead')}")
    more = f" ({already} already started)" if already else ""
    return Message(kind=MessageKind.ACK, title=f"Outreach started for {plural(started, 'lead')}{more}",
                   text="Each email waits for your approval before it goes out, as policy says.")


def no_ranked_list(run_id: int) -> Message:
    return Message(kind=MessageKind.NOTICE, title=f"Run #{run_id} has no ranked list of leads")
