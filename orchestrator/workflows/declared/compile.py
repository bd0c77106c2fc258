"""From a checked workflow file to the `Workflow` model the engine runs, step by step."""
from __future__ import annotations

from orchestrator import words
from orchestrator.policy import Effect
from orchestrator.workflows.declared import segments, steps
from orchestrator.workflows.declared.catalogue import Builtin, effect_of, side_effecting
from orchestrator.workflows.declared.schema import StepSpec, WorkflowFile
from orchestrator.workflows.model import Step, StepFn, Workflow


def compile_file(spec: WorkflowFile) -> Workflow:
    """The workflow a checked file describes (see `checks.check`): the engine runs it as any other."""
    return Workflow(
        name=spec.name, title=spec.title, describe=spec.describe, queue=spec.queue, triggered_by=spec.triggered_by,
        steps=tuple(_step(spec, position) for position in range(len(spec.step))),
    )


def _step(spec: WorkflowFile, position: int) -> Step:
    step = spec.step[position]
    title = step.title or step.name.replace("_", " ")
    return Step(
        name=step.name, effect=_effect(spec, position), run=steps.guarded(step, _run(step, spec, position)),
        compensate=steps.connector_undo(step) if side_effecting(step.do) and step.compensate is not None else None,
        title=title, summarise=lambda result: words.workflow_files.step_summary(title, result),
    )


def _run(step: StepSpec, spec: WorkflowFile, position: int) -> StepFn:
    if side_effecting(step.do):
        return steps.connector_step(step, spec.name)
    builders = {
        Builtin.AGENT: lambda: steps.agent_step(step),
        Builtin.APPROVAL: lambda: steps.approval_step(step, spec.name, _gated_effect(spec, position)),
        Builtin.WAIT: lambda: steps.wait_step(step),
        Builtin.NOTIFY: lambda: steps.notify_step(step),
        Builtin.REMEMBER: lambda: steps.remember_step(step),
        Builtin.CONTACTS: lambda: segments.contacts_step(step),
        Builtin.POLICY: lambda: segments.policy_step(step),
        Builtin.RANK: lambda: segments.rank_step(step),
        Builtin.RANKED_LIST: lambda: segments.ranked_list_step(step),
    }
    return builders[Builtin(step.do)]()


def _effect(spec: WorkflowFile, position: int) -> Effect:
    step = spec.step[position]
    if step.do == Builtin.APPROVAL:
        return _gated_effect(spec, position)
    return effect_of(step.do, tier=step.tier)


def _gated_effect(spec: WorkflowFile, position: int) -> Effect:
    """What a gate lets happen: the effect of the first outside action after it (READ when there is none)."""
    later = (s for s in spec.step[position + 1:] if side_effecting(s.do))
    first = next(later, None)
    return effect_of(first.do) if first is not None else Effect.READ
