"""What the operator is told by and about workflow files: their steps' approvals and messages, and the listing."""
from __future__ import annotations

import json
from typing import Any

from orchestrator.approvals import ApprovalRequest
from orchestrator.messages import Fact, Message, MessageKind
from orchestrator.words.common import plural

PREVIEW_ITEMS = 5


def gate_request(ask: str, why: str, workflow: str) -> ApprovalRequest:
    return ApprovalRequest(what=ask, why=why or f"The {workflow} workflow waits for you here.")


def action_request(title: str, action_type: str, actions: list[dict[str, Any]]) -> ApprovalRequest:
    """The ask policy makes before a file step's connector action (one, or one per item)."""
    shown = "\n".join(json.dumps(action, default=str, ensure_ascii=False) for action in actions[:PREVIEW_ITEMS])
    if len(actions) > PREVIEW_ITEMS:
        shown += f"\n… and {len(actions) - PREVIEW_ITEMS} more"
    return ApprovalRequest(
        what=f"{title or action_type}?" if len(actions) == 1 else f"{title or action_type}: {len(actions)} times?",
        why=f"Policy asks you before {action_type}.",
        facts=[Fact(label="Action", value=action_type), Fact(label="Count", value=str(len(actions)))],
        preview=shown,
    )


def told(text: str) -> Message:
    return Message(kind=MessageKind.NOTICE, title=text)


def step_summary(title: str, result: dict[str, Any]) -> str:
    if result.get("skipped"):
        return f"{title}: skipped ({result['skipped']})"
    if "items" in result:
        return f"{title}: {plural(len(result['items']), 'item')}"
    return title


def workflows_listing(rows: list[tuple[str, str, str]]) -> Message:
    """`workflows` in chat: each workflow's name, where it comes from (python, or its file) and what it does."""
    lines = [f"• {name} ({origin}): {describe}" if describe else f"• {name} ({origin})"
             for name, origin, describe in rows]
    return Message(kind=MessageKind.REPORT, title=f"{plural(len(rows), 'workflow')}", text="\n".join(lines))


def workflow_detail(workflow: Any, origin: str, spec: Any | None) -> Message:
    """`opsos workflows show NAME`: its steps in order, what each does and how it is undone."""
    lines = []
    for position, step in enumerate(workflow.steps, start=1):
        declared = spec.step[position - 1] if spec is not None else None
        undo = "undone by its compensation" if step.compensate is not None else "not undone"
        if declared is not None and declared.irreversible:
            undo = f"irreversible: {declared.irreversible}"
        does = f"{declared.do}, " if declared is not None else ""
        when = f", when {declared.when}" if declared is not None and declared.when else ""
        each = f", for each of {declared.for_each}" if declared is not None and declared.for_each else ""
        lines.append(f"{position}. {step.name}: {step.title} ({does}{step.effect.value}{when}{each}; {undo})")
    return Message(kind=MessageKind.REPORT, title=f"{workflow.name}: {workflow.title} ({origin})",
                   text="\n".join([workflow.describe, *lines] if workflow.describe else lines))


def file_checked(path: str, workflow: Any, clash: str | None) -> Message:
    steps = plural(len(workflow.steps), "step")
    if clash is not None:
        return Message(kind=MessageKind.ALERT, title=f"{path}: valid, {steps}, but “{workflow.name}” is already "
                                                     f"the workflow of {clash}")
    return Message(kind=MessageKind.NOTICE, title=f"{path}: valid: {workflow.name}, {steps}")
