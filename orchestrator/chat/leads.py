"""The ranked list's button: outreach for the top leads of a lead-qualification run, through the normal intake."""
from __future__ import annotations

from typing import Any

from orchestrator import intents, steps, words
from orchestrator.chat import intake
from orchestrator.chat.requester import Requester
from orchestrator.messages import Message
from orchestrator.services import Services
from orchestrator.steps import StepState
from orchestrator.workflows.outreach import OUTREACH_EMAIL

OUTREACH_KIND = "outreach_email"


def outreach_key(run_id: int, contact_id: str) -> str:
    """The intent's dedupe key: one outreach per lead of a run, however often the button is pressed."""
    return f"leads:{run_id}:{contact_id}"


def _top(services: Services, run_id: int) -> tuple[list[dict[str, Any]], str | None] | None:
    with services.stores.pool.connection() as conn:
        records = steps.records(conn, run_id)
    for record in records.values():
        if record.state is StepState.SUCCEEDED and record.result and "outreach_top" in record.result:
            return record.result["outreach_top"], record.result.get("about")
    return None


def start_outreach(services: Services, who: Requester, run_id: int) -> Message:
    """An outreach intent for each of the run's top leads (the caller checked `who` is an operator).

    Each is an ordinary request in words, so the outreach workflow reads it, drafts the email and asks for the
    approval policy says; a second press finds every intent by its dedupe key and starts none.
    """
    found = _top(services, run_id)
    if found is None:
        return words.leads.no_ranked_list(run_id)
    top, about = found
    started = already = 0
    for lead in top:
        key = outreach_key(run_id, lead["contact_id"])
        with services.stores.pool.connection() as conn:
            if intents.by_dedupe_key(conn, key) is not None:
                already += 1
                continue
        intake.start(services, who, request=words.leads.outreach_request(lead["email"], about), kind=OUTREACH_KIND,
                     workflow=OUTREACH_EMAIL.name, params={"confidence": None, "qualified_by": run_id},
                     dedupe_key=key)
        started += 1
    return words.leads.outreach_started(started, already)
