"""The catalogue's steps over contacts: read a segment, read a policy the operator keeps, rank scores, post a list.

None acts outside the business: they read the CRM and memory, screen an agent's scores against the contacts the
run itself read, and tell the operator. Each takes its values in `with` (the models below, checked at load).
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors import Contact
from memory import Kind
from orchestrator import audit, outbox, runs, words
from orchestrator.runs import RunEvent
from orchestrator.transitions import move_run
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.declared import template
from orchestrator.workflows.declared.schema import StepSpec
from orchestrator.workflows.declared.steps import scope
from orchestrator.workflows.model import StepFn


class ContactsWith(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["lead", "active", "lapsed"] = "lead"
    # Keep only the contacts with a tag or `source` the request names ("the leads from the webinar").
    named_in_request: bool = False


class RankWith(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scores: list[dict[str, Any]]
    among: list[dict[str, Any]]
    qualified_at: int = Field(default=60, ge=0, le=100)


class RankedListWith(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ranked: list[dict[str, Any]]
    top: int = Field(default=3, ge=1, le=10)
    about: str | None = None


WITH_OF: dict[str, type[BaseModel]] = {"contacts": ContactsWith, "rank": RankWith, "ranked_list": RankedListWith}


def _with(spec: StepSpec, ctx: StepContext, model: type[BaseModel]) -> Any:
    return model.model_validate(template.render(spec.with_, scope(ctx)))


def labels(contact: Contact) -> list[str]:
    source = contact.attributes.get("source")
    return [tag.lower() for tag in contact.tags] + ([str(source).lower()] if source else [])


def named_source(request: str, contacts: list[Contact]) -> str | None:
    """The tag or source of these contacts that the request names, the longest when several do (pure): a simple
    rule, not a model, so it never filters by a label nobody wrote."""
    known = sorted({label for contact in contacts for label in labels(contact) if label}, key=lambda t: (-len(t), t))
    lowered = request.lower()
    return next((label for label in known if re.search(rf"\b{re.escape(label)}s?\b", lowered)), None)


def contacts_step(spec: StepSpec) -> StepFn:
    def run(ctx: StepContext) -> dict[str, Any]:
        given = _with(spec, ctx, ContactsWith)
        segment = ctx.services.crm.segment(given.status)
        source = named_source(ctx.intent.request, segment) if given.named_in_request else None
        if source is not None:
            segment = [contact for contact in segment if source in labels(contact)]
        shown = [contact.model_dump(mode="json", include={"id", "name", "email", "tags", "attributes", "notes"})
                 for contact in segment]
        return {"contacts": shown, "source": source, "count": len(shown)}

    return run


def policy_step(spec: StepSpec) -> StepFn:
    """The operator's policy memory under `subject`; with none, ask for it and end the run: never a made-up one."""
    def run(ctx: StepContext) -> dict[str, Any]:
        subject = str(template.render(spec.subject, scope(ctx)))
        found = ctx.services.memory.recall(subject, subject=subject, kind=Kind.POLICY, k=1)
        if found:
            return {"text": found[0].text, "memory": found[0].id, "subject": subject}
        return _ask_for_policy(ctx, subject, str(template.render(spec.ask, scope(ctx))))

    return run


def _ask_for_policy(ctx: StepContext, subject: str, ask: str) -> dict[str, Any]:
    with ctx.writing() as conn:
        # The run's row lock first, then the audit chain's: the order every other writer takes them in.
        runs.get(conn, ctx.run.id, for_update=True)
        outbox.post(conn, channel=ctx.intent.channel, conversation=ctx.intent.conversation,
                    message=words.leads.policy_missing(subject, ask), intent_id=ctx.intent.id, run_id=ctx.run.id,
                    dedupe_key=f"{ctx.key}:ask")
        audit.append(conn, at=ctx.services.now(), actor="opsos", kind="policy.missing", intent_id=ctx.intent.id,
                     run_id=ctx.run.id, payload={"subject": subject})
        move_run(conn, ctx.run.id, RunEvent.CANCEL, actor="opsos", now=ctx.services.now(),
                 reason=f"needs the {subject}: asked the operator")
    return {"missing": subject}


def rank(scores: list[dict[str, Any]], among: list[dict[str, Any]], *, qualified_at: int) -> dict[str, Any]:
    """The agent's scores screened against the contacts the run read, best first, each with its tags (pure).

    A score for a contact the run did not read, or a second one for the same contact, is dropped: an
    agent's answer never chooses which contacts get tagged.
    """
    known = {contact["id"]: contact for contact in among}
    ranked, dropped, seen = [], [], set()
    for given in scores:
        contact_id = str(given.get("contact_id", ""))
        score = given.get("score")
        if contact_id not in known or contact_id in seen or not isinstance(score, int) or not 0 <= score <= 100:
            dropped.append(contact_id)
            continue
        seen.add(contact_id)
        contact = known[contact_id]
        ranked.append({"contact_id": contact_id, "name": contact["name"], "email": contact["email"], "score": score,
                       "reason": str(given.get("reason") or ""),
                       "tags": [f"score:{score}", *(["qualified"] if score >= qualified_at else [])]})
    ranked.sort(key=lambda lead: (-lead["score"], lead["name"], lead["contact_id"]))
    return {"ranked": ranked, "dropped": dropped, "unscored": [i for i in known if i not in seen]}


def rank_step(spec: StepSpec) -> StepFn:
    def run(ctx: StepContext) -> dict[str, Any]:
        given = _with(spec, ctx, RankWith)
        return rank(given.scores, given.among, qualified_at=given.qualified_at)

    return run


def ranked_list_step(spec: StepSpec) -> StepFn:
    """The ranked list in chat, with a button that starts outreach for the first `top` (see `chat.leads`)."""
    def run(ctx: StepContext) -> dict[str, Any]:
        given = _with(spec, ctx, RankedListWith)
        heading = str(template.render(spec.text, scope(ctx)))
        top = given.ranked[:given.top]
        message = words.leads.ranked_list(heading, given.ranked, top=len(top), run_id=ctx.run.id, about=given.about)
        ctx.notify(message, event="leads.ranked", payload={"step": spec.name, "ranked": len(given.ranked)},
                   dedupe="ranked")
        return {"ranked": len(given.ranked), "about": given.about,
                "outreach_top": [{k: lead[k] for k in ("contact_id", "name", "email")} for lead in top]}

    return run
