"""The step functions of a workflow file's steps: what each catalogue action does when the engine runs it.

Each runs inside the engine like a Python step: its connector actions go through the action registry
under keys built from the run, the step and (for a for-each step) the item, so a re-run after a crash
finds them done; policy asks for an approval by effect as it does for every step.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from connectors import ActionInProgress, ActionRejected
from memory import Kind
from orchestrator import audit, words
from orchestrator.approvals import AwaitingApproval
from orchestrator.policy import Effect
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.declared import template
from orchestrator.workflows.declared.catalogue import AGENTS, CONNECTOR_ACTIONS, effect_of
from orchestrator.workflows.declared.schema import Compensation, StepSpec
from orchestrator.workflows.model import CompensateFn, StepFn
from orchestrator.workflows.snapshot import Gathered


class WaitingUntil(ActionInProgress):
    """A wait step before its time: the engine leaves the run running, and recovery takes it up again.

    It is an ActionInProgress so the engine treats it as nothing failed: it sleeps in the worker for a short
    wait, and leaves a longer one to the scheduler's recovery, which re-enqueues the run until the time comes.
    """


def scope(ctx: StepContext, item: Any = None) -> dict[str, Any]:
    return {"params": ctx.intent.params, "steps": ctx.results, "item": item}


def _items(spec: StepSpec, ctx: StepContext) -> list[tuple[Any, list[str]]]:
    """The step's items, each with the parts of its action key: one item and no parts for a plain step."""
    if spec.for_each is None:
        return [(None, [])]
    items = template.lookup(spec.for_each, scope(ctx))
    if not isinstance(items, list):
        raise template.TemplateError(f"for_each “{spec.for_each}” is not a list")
    keyed: list[tuple[Any, list[str]]] = []
    for item in items:
        if spec.item_key is not None:
            key = str(template.render(spec.item_key, scope(ctx, item)))
        elif isinstance(item, str | int):
            key = str(item)
        else:
            raise template.TemplateError(f"for_each “{spec.for_each}” holds tables: say which field keys each "
                                         "(item_key = \"{{ item.id }}\")")
        keyed.append((item, [key]))
    keys = [parts[0] for _item, parts in keyed]
    if len(set(keys)) != len(keys):
        # Two items under one key would be one action: the second silently never happens.
        raise template.TemplateError(f"for_each “{spec.for_each}”: two items have the same key")
    return keyed


def guarded(spec: StepSpec, run: StepFn) -> StepFn:
    """`run`, skipped (and its result saying so) when the step's condition does not hold."""
    if spec.when is None:
        return run
    condition = spec.when

    def step(ctx: StepContext) -> dict[str, Any]:
        if not template.holds(condition, scope(ctx)):
            return {"skipped": f"not {condition}"}
        return run(ctx)

    return step


def connector_step(spec: StepSpec, workflow: str) -> StepFn:
    entry = CONNECTOR_ACTIONS[spec.do]

    def run(ctx: StepContext) -> dict[str, Any]:
        if entry.needs_stripe and spec.do not in ctx.services.connectors.action_types:
            raise ActionRejected(words.needs_stripe(f"{workflow}.{spec.name} ({spec.do})"), code="needs_stripe")
        route = ctx.services.connectors.route(spec.do)
        if spec.compensate == "connector" and not route.reversible:
            raise RuntimeError(f"{workflow}.{spec.name}: {spec.do} is not reversible by its connector")
        planned = []
        for item, parts in _items(spec, ctx):
            fields = {**entry.defaults(ctx.services.settings), **template.render(spec.with_, scope(ctx, item))}
            planned.append((route.model.model_validate(fields), ctx.action_key(*parts)))
        # One approval for the whole list, bound to every action it lets run.
        actions = [action.model_dump(mode="json") for action, _key in planned]
        ctx.require_approval(effect=effect_of(spec.do), action=actions,
                             ask=words.workflow_files.action_request(spec.title, spec.do, actions))
        done = []
        for action, key in planned:
            ctx.link_action(key)
            done.append({"key": key, "result": ctx.services.connectors.execute(spec.do, action=action, key=key)
                         .model_dump(mode="json")})
        return {"items": done} if spec.for_each is not None else done[0]

    return run


def connector_undo(spec: StepSpec) -> CompensateFn:
    """Undo a connector step item by item, newest first, under the keys it acted with.

    A step that failed half-way has no result, so the keys are rebuilt from its items; undoing a key
    that never acted is a no-op for every connector, as is undoing one a killed attempt already undid.
    """
    def undo(ctx: StepContext, result: dict[str, Any]) -> dict[str, Any]:
        if result.get("skipped"):
            return {"undone": []}
        try:
            # The same items as when it ran: the intent's params and the same earlier steps' results.
            items = _items(spec, ctx)
        except template.TemplateError:
            return {"undone": []}  # its items were never there: it acted on none
        outcomes = []
        for item, parts in reversed(items):
            key = ctx.action_key(*parts)
            if spec.compensate == "connector":
                outcomes.append(ctx.services.connectors.compensate(spec.do, key=key))
            else:
                assert isinstance(spec.compensate, Compensation)
                outcomes.append(_counter_action(ctx, spec.compensate, item, key))
        return {"undone": outcomes}

    return undo


def _counter_action(ctx: StepContext, undo: Compensation, item: Any, key: str) -> str:
    route = ctx.services.connectors.route(undo.do)
    fields = {**CONNECTOR_ACTIONS[undo.do].defaults(ctx.services.settings),
              **template.render(undo.with_, scope(ctx, item))}
    done = ctx.services.connectors.execute(undo.do, action=route.model.model_validate(fields), key=f"{key}:undo")
    return f"{undo.do}: {done.model_dump(mode='json')}"


def agent_step(spec: StepSpec) -> StepFn:
    agent, tier = AGENTS[spec.agent or ""], spec.tier

    def run(ctx: StepContext) -> dict[str, Any]:
        facts = template.render(spec.with_, scope(ctx))
        question = str(template.render(spec.drafts, scope(ctx)))
        snapshot = ctx.snapshot(question=question, gather=lambda: Gathered(facts={"drafts": question, **facts}))
        return ctx.agent(agent, snapshot, tier=tier)

    return run


def approval_step(spec: StepSpec, workflow: str, effect: Effect) -> StepFn:
    """A gate: always asks the operator (whatever policy says), bound to the words it shows."""
    ttl = timedelta(minutes=spec.expires_minutes) if spec.expires_minutes else None

    def run(ctx: StepContext) -> dict[str, Any]:
        ask = str(template.render(spec.ask, scope(ctx)))
        why = str(template.render(spec.why, scope(ctx)))
        try:
            approval = ctx.require_approval(effect=effect, action={"gate": spec.name, "ask": ask, "why": why},
                                            ask=words.workflow_files.gate_request(ask, why, workflow), required=True)
        except AwaitingApproval as wait:
            raise AwaitingApproval(digest=wait.digest, ask=wait.ask, ttl=ttl) from None
        assert approval is not None, "a required approval is granted or raises"
        return {"approved": approval.id, "by": approval.decided_by}

    return run


def wait_step(spec: StepSpec) -> StepFn:
    def run(ctx: StepContext) -> dict[str, Any]:
        if spec.after_minutes is not None:
            until = ctx.intent.created_at + timedelta(minutes=spec.after_minutes)
        else:
            value = template.render(spec.until, scope(ctx))
            until = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        left = (until - ctx.services.now()).total_seconds()
        if left > 0:
            raise WaitingUntil(f"waiting until {until.isoformat()}", key=ctx.key, retry_after=left)
        return {"waited_until": until.isoformat()}

    return run


def notify_step(spec: StepSpec) -> StepFn:
    def run(ctx: StepContext) -> dict[str, Any]:
        told = []
        for item, parts in _items(spec, ctx):
            text = str(template.render(spec.text, scope(ctx, item)))
            ctx.notify(words.workflow_files.told(text), event="workflow.told", payload={"step": spec.name,
                       "text": text}, dedupe=":".join(["told", *parts]))
            told.append(text)
        return {"told": told}

    return run


def remember_step(spec: StepSpec) -> StepFn:
    """A fact in long-term memory, under the step's key: a re-run supersedes it rather than adding another."""
    def run(ctx: StepContext) -> dict[str, Any]:
        text = str(template.render(spec.text, scope(ctx)))
        subject = str(template.render(spec.subject, scope(ctx)))
        with ctx.writing() as conn:
            record = ctx.services.memory.remember(
                text, kind=Kind.FACT, subject=subject, ref=ctx.key, conn=conn,
                provenance={"source": "workflow", "run_id": ctx.run.id, "intent_id": ctx.intent.id})
            audit.append(conn, actor="opsos", kind="memory.remembered", at=ctx.services.now(),
                         intent_id=ctx.intent.id, run_id=ctx.run.id,
                         payload={"memory": record.id, "subject": subject, "outcome": record.outcome})
        return {"memory": record.id, "subject": subject}

    return run
