"""Reading workflow files: the shipped ones (`orchestrator/workflows/files`) and the operator's own folder."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from orchestrator.workflows.declared.checks import check
from orchestrator.workflows.declared.compile import compile_file
from orchestrator.workflows.declared.schema import Problem, WorkflowFile, WorkflowFileError, parse
from orchestrator.workflows.model import Workflow

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "files"


@dataclass(frozen=True)
class LoadedFile:
    path: Path
    spec: WorkflowFile
    workflow: Workflow


def read_file(path: Path) -> LoadedFile:
    """Parse, check and compile one workflow file; raises WorkflowFileError naming it, its step and field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as unreadable:
        raise WorkflowFileError([Problem(file=str(path), message=f"not readable as TOML: {unreadable}")]) \
            from unreadable
    spec = parse(data, path)
    check(spec, str(path))
    return LoadedFile(path=path, spec=spec, workflow=compile_file(spec))


def read_dir(directory: Path, *, taken: dict[str, str] | None = None) -> dict[str, LoadedFile]:
    """Every `*.toml` of `directory` by workflow name. `taken` maps names already in use to where they come
    from; a name used twice is an error naming both places. Raises WorkflowFileError with every problem of
    every file, so the operator fixes them all in one go."""
    origins = dict(taken or {})
    loaded: dict[str, LoadedFile] = {}
    problems: list[Problem] = []
    if not directory.is_dir():
        raise WorkflowFileError([Problem(file=str(directory), message="no such folder of workflow files")])
    for path in sorted(directory.glob("*.toml")):
        try:
            found = read_file(path)
        except WorkflowFileError as broken:
            problems.extend(broken.problems)
            continue
        name = found.spec.name
        if name in origins:
            problems.append(Problem(file=str(path), field="name",
                                    message=f"“{name}” is already the workflow of {origins[name]}"))
            continue
        origins[name] = str(path)
        loaded[name] = found
    if problems:
        raise WorkflowFileError(problems)
    return loaded
