"""What a process does first: its services, with the operator's workflow files added to the shipped ones; and the
read-only views of the workflows for `opsos workflows` and `workflows` in chat."""
from __future__ import annotations

from pathlib import Path

from orchestrator import services as built
from orchestrator import words
from orchestrator.errors import NotFound
from orchestrator.messages import Message
from orchestrator.services import Services
from orchestrator.settings import Settings
from orchestrator.stores import Stores
from orchestrator.workflows import FILES, ORIGINS, WORKFLOWS, add_operator_workflows
from orchestrator.workflows.declared import read_file


def build_services(settings: Settings, stores: Stores | None = None) -> Services:
    """`services.build_services`, after adding `settings.workflows_dir`: a broken workflow file stops the
    process as it starts (WorkflowFileError, naming the file, the step and the field), not a run later."""
    add_operator_workflows(settings.workflows_dir)
    return built.build_services(settings, stores)


def workflows_overview(settings: Settings | None = None) -> Message:
    """Every workflow this process runs, with where it comes from; `settings` adds the operator's folder first."""
    if settings is not None:
        add_operator_workflows(settings.workflows_dir)
    return words.workflow_files.workflows_listing(
        [(name, _short(ORIGINS[name]), workflow.describe) for name, workflow in sorted(WORKFLOWS.items())])


def workflow_detail(name: str, settings: Settings | None = None) -> Message:
    """One workflow's steps as the engine runs them; raises NotFound for a name no workflow has."""
    if settings is not None:
        add_operator_workflows(settings.workflows_dir)
    if name not in WORKFLOWS:
        raise NotFound("workflow", name)
    loaded = FILES.get(name)
    return words.workflow_files.workflow_detail(WORKFLOWS[name], _short(ORIGINS[name]),
                                                loaded.spec if loaded is not None else None)


def workflow_file_check(path: Path) -> Message:
    """Check one workflow file; raises WorkflowFileError with each problem (its file, step and field)."""
    loaded = read_file(path.resolve())
    clash = ORIGINS.get(loaded.spec.name)
    return words.workflow_files.file_checked(str(path), loaded.workflow,
                                             clash if clash not in (None, str(path.resolve())) else None)


def _short(origin: str) -> str:
    # A shipped file or module is named from the project's root; the operator's own by its full path.
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return origin.removeprefix(root)
