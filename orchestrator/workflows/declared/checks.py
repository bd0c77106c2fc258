"""What a parsed workflow file must satisfy beyond its types: the catalogue, its references, its safety.

Safety: a step that acts outside the business (a connector action) needs an approval gate earlier
in the file that always runs, unless it says `unattended = true`; and a way to be taken back (its
route's own `compensate`, or a catalogue action), unless it says `irreversible = "why"`.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, TypeAdapter, ValidationError

from orchestrator.workflows.declared import template
from orchestrator.workflows.declared.catalogue import AGENTS, CONNECTOR_ACTIONS, Builtin, known_actions, side_effecting
from orchestrator.workflows.declared.schema import Problem, StepSpec, WorkflowFile, WorkflowFileError
from orchestrator.workflows.declared.segments import WITH_OF

COMMON = {"name", "do", "title", "when", "for_each", "item_key", "unattended", "irreversible", "compensate"}
FIELDS_OF: dict[str, set[str]] = {
    Builtin.AGENT: {"agent", "drafts", "tier", "with"},
    Builtin.APPROVAL: {"ask", "why", "expires_minutes"},
    Builtin.WAIT: {"until", "after_minutes", "event", "reply"},
    Builtin.NOTIFY: {"text"},
    Builtin.REMEMBER: {"text", "subject"},
    Builtin.POLICY: {"subject", "ask"},
    Builtin.RANKED_LIST: {"text", "with"},
}
TEMPLATED = ("with", "ask", "why", "text", "subject", "drafts", "until", "item_key")


def check(spec: WorkflowFile, file: str) -> None:
    """Raise WorkflowFileError with every problem of `spec`, in file order; return when there is none."""
    problems: list[Problem] = []
    earlier: list[str] = []
    gated = False
    for step in spec.step:
        def problem(field: str | None, message: str, step: StepSpec = step) -> None:
            problems.append(Problem(file=file, step=step.name, field=field, message=message))

        if step.name in earlier:
            problem("name", "another step has this name")
        _check_kind(step, problem)
        _check_references(step, earlier, problem)
        if side_effecting(step.do):
            _check_safety(step, gated, problem)
        else:
            for opt_out in ("compensate", "unattended", "irreversible"):
                if opt_out in step.given():
                    problem(opt_out, "only a step that acts outside the business (a connector action) takes this")
        gated = gated or (step.do == Builtin.APPROVAL and step.when is None)
        earlier.append(step.name)
    if problems:
        raise WorkflowFileError(problems)


def _check_kind(step: StepSpec, problem) -> None:
    if step.do not in known_actions():
        problem("do", f"“{step.do}” is not in the catalogue (known: {', '.join(known_actions())})")
        return
    allowed = COMMON | FIELDS_OF.get(step.do, {"with"})
    for field in sorted(step.given() - allowed):
        problem(field, f"not a field of a “{step.do}” step")
    if step.for_each is not None and not side_effecting(step.do) and step.do != Builtin.NOTIFY:
        problem("for_each", "only a connector action or a message runs once per item")
    if step.item_key is not None and step.for_each is None:
        problem("item_key", "only a for_each step keys its items")
    required = {Builtin.AGENT: ("agent", "drafts"), Builtin.APPROVAL: ("ask",), Builtin.NOTIFY: ("text",),
                Builtin.REMEMBER: ("text", "subject"), Builtin.POLICY: ("subject", "ask"),
                Builtin.RANKED_LIST: ("text",)}.get(step.do, ())
    for field in required:
        if field not in step.given():
            problem(field, "missing")
    if step.do == Builtin.AGENT and step.agent is not None and step.agent not in AGENTS:
        problem("agent", f"no agent “{step.agent}” (known: {', '.join(sorted(AGENTS))})")
    if step.do == Builtin.WAIT:
        if step.event is not None or step.reply is not None:
            problem("event" if step.event is not None else "reply",
                    "waiting for an event or a reply is not supported yet: wait until a time (until, after_minutes)")
        elif (step.until is None) == (step.after_minutes is None):
            problem("until", "a wait takes one of until (a time) or after_minutes")
    if step.do in CONNECTOR_ACTIONS:
        entry = CONNECTOR_ACTIONS[step.do]
        _check_fields(step.do, entry.model, step.with_, "with", problem, filled=set(entry.from_settings))
    elif step.do in WITH_OF:
        _check_fields(step.do, WITH_OF[step.do], step.with_, "with", problem)


def _check_fields(action: str, model: type[BaseModel], given: dict, field: str, problem,
                  filled: set[str] | None = None) -> None:
    fields = set(model.model_fields)
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    for name in sorted(set(given) - fields):
        problem(f"{field}.{name}", f"not a field of {action} (its fields: {', '.join(sorted(fields))})")
    for name in sorted(required - set(given) - (filled or set())):
        problem(f"{field}.{name}", f"missing (every {action} needs it)")
    # A literal value is checked now against its field's type; a templated one when the step runs.
    for name, value in given.items():
        if name not in fields or list(template.references(value)):
            continue
        info = model.model_fields[name]
        try:
            annotated = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
            TypeAdapter(annotated).validate_python(value)
        except ValidationError as invalid:
            problem(f"{field}.{name}", invalid.errors()[0]["msg"])


def _check_references(step: StepSpec, earlier: list[str], problem) -> None:
    paths: list[tuple[str, str]] = []
    for field in TEMPLATED:
        value = step.with_ if field == "with" else getattr(step, field)
        paths.extend((field, path) for path in template.references(value))
    if step.compensate is not None and step.compensate != "connector":
        paths.extend(("compensate.with", path) for path in template.references(step.compensate.with_))
    if step.for_each is not None:
        paths.append(("for_each", step.for_each))
    if step.when is not None:
        condition = template.condition_problem(step.when)
        if condition is not None:
            problem("when", condition)
        else:
            paths.append(("when", template.condition_path(step.when)))
    for field, path in paths:
        found = template.path_problem(path)
        root = path.split(".", 1)[0]
        if found is None and root == "steps" and path.split(".")[1] not in earlier:
            found = f"“{path}”: no earlier step is named “{path.split('.')[1]}”"
        if found is None and root == "item" and (step.for_each is None or field in ("for_each", "when")):
            found = f"“{path}”: item is only there inside a for_each step"
        if found is not None:
            problem(field, found)


def _check_safety(step: StepSpec, gated: bool, problem) -> None:
    if not gated and not step.unattended:
        problem("do", f"{step.do} with no approval gate before it: add an approval step before it, "
                      "or say unattended = true")
    if step.compensate == "connector":
        if not CONNECTOR_ACTIONS[step.do].reversible:
            problem("compensate", f"{step.do} cannot be taken back by its connector: name an action that undoes "
                                  "it, or say irreversible = \"why\"")
    elif step.compensate is not None:
        if step.compensate.do not in CONNECTOR_ACTIONS:
            problem("compensate.do", f"“{step.compensate.do}” is not a connector action "
                                     f"(known: {', '.join(sorted(CONNECTOR_ACTIONS))})")
        else:
            undo = CONNECTOR_ACTIONS[step.compensate.do]
            _check_fields(step.compensate.do, undo.model, step.compensate.with_, "compensate.with", problem,
                          filled=set(undo.from_settings))
    elif step.irreversible is None:
        problem("compensate", f"{step.do} names no compensation: say compensate = \"connector\" or an action "
                              "that undoes it, or irreversible = \"why\"")
    if step.compensate is not None and step.irreversible is not None:
        problem("irreversible", "a step with a compensation is not irreversible")
