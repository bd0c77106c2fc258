"""The shape of a workflow file, as pydantic models; its errors name the file, the step and the field.

Parsing checks each value's type; `checks.check` then checks the file against the catalogue and
against the safety rules. Both raise WorkflowFileError, whose problems read
`orders.toml: step "welcome": tier: Input should be 'draft' or 'reason'`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import OpsError

NAME = r"^[a-z][a-z0-9_]*$"


class Problem(BaseModel):
    """One thing wrong with a workflow file: where (the step and the field, when there is one) and what."""

    file: str
    step: str | None = None
    field: str | None = None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.step is not None:
            where.append(f"step “{self.step}”")
        if self.field is not None:
            where.append(self.field)
        return f"{': '.join(where)}: {self.message}"


class WorkflowFileError(OpsError):
    """A workflow file that cannot be loaded; `problems` says each thing wrong, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


class Compensation(BaseModel):
    """A catalogue action that undoes a step, with its own fields (templates over the same values)."""

    model_config = ConfigDict(extra="forbid")

    do: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class StepSpec(BaseModel):
    """One `[[step]]` table. Which fields apply depends on `do`; `checks.check` refuses the others."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=NAME, max_length=60)
    do: str
    title: str = ""
    # A condition (see `template`): the step is skipped, recorded as skipped, when it does not hold.
    when: str | None = None
    # A path to a list: the action runs once per item, each under its own idempotency key (`item_key`).
    for_each: str | None = None
    item_key: str | None = None
    # A connector action's fields (templates); for an agent step, the facts it is given.
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    # "connector" (the route's own compensate) or a catalogue action.
    compensate: Literal["connector"] | Compensation | None = None
    # The explicit opt-outs of the safety rules: no approval gate before it, no way to take it back (and why).
    unattended: bool = False
    irreversible: str | None = Field(default=None, min_length=1)
    # Agent steps.
    agent: str | None = None
    drafts: str | None = None
    tier: Literal["draft", "reason"] = "draft"
    # Approval gates.
    ask: str | None = None
    why: str = ""
    expires_minutes: int | None = Field(default=None, gt=0)
    # Waits.
    until: str | None = None
    after_minutes: int | None = Field(default=None, gt=0)
    event: str | None = None
    reply: bool | None = None
    # Messages to the operator and memories.
    text: str | None = None
    subject: str | None = None

    def given(self) -> set[str]:
        """The fields the file set (by their names in the file)."""
        return {"with" if name == "with_" else name for name in self.model_fields_set}


class WorkflowFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, max_length=60)
    title: str
    describe: str = ""
    queue: Literal["interactive", "default", "slow"] = "default"
    triggered_by: str = ""
    step: list[StepSpec] = Field(min_length=1)


def parse(data: dict[str, Any], file: Path | str) -> WorkflowFile:
    """The file's tables as a WorkflowFile; raises WorkflowFileError naming the step and field of each error."""
    try:
        return WorkflowFile.model_validate(data)
    except ValidationError as invalid:
        raise WorkflowFileError([_problem(error, data, str(file)) for error in invalid.errors()]) from invalid


def _problem(error: Any, data: dict[str, Any], file: str) -> Problem:
    loc = list(error["loc"])
    step: str | None = None
    if len(loc) >= 2 and loc[0] == "step" and isinstance(loc[1], int):
        steps = data.get("step") or []
        raw = steps[loc[1]] if loc[1] < len(steps) and isinstance(steps[loc[1]], dict) else {}
        step = str(raw.get("name") or f"#{loc[1] + 1}")
        loc = loc[2:]
    # A union's branch names (`Compensation`, `literal['connector']`) say nothing to the operator.
    field = ".".join(str(part) for part in loc if not str(part)[:1].isupper() and "[" not in str(part)) or None
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "not a field of a workflow file here"
    elif error["type"] == "missing":
        message = "missing"
    return Problem(file=file, step=step, field=field, message=message)
