"""The workflows opsos can run, by name: the Python ones, the shipped files and the operator's own files."""
from pathlib import Path

from orchestrator.workflows.accounts import ACCOUNT_PAUSE, ACCOUNT_RESUME, REFUND_CUSTOMER
from orchestrator.workflows.bookkeeping import BOOKKEEPING_SUMMARY
from orchestrator.workflows.content_post import CONTENT_POST
from orchestrator.workflows.declared import SHIPPED_DIR, LoadedFile, read_dir
from orchestrator.workflows.dunning import DUNNING
from orchestrator.workflows.forget import FORGET
from orchestrator.workflows.fulfilment import FULFILMENT
from orchestrator.workflows.lapse import SUBSCRIPTION_LAPSED
from orchestrator.workflows.model import Workflow
from orchestrator.workflows.outreach import OUTREACH_EMAIL
from orchestrator.workflows.winback import WINBACK

_PYTHON = (WINBACK, CONTENT_POST, OUTREACH_EMAIL, BOOKKEEPING_SUMMARY, ACCOUNT_PAUSE, ACCOUNT_RESUME,
           REFUND_CUSTOMER, FORGET, DUNNING, FULFILMENT, SUBSCRIPTION_LAPSED)

# Where each workflow comes from: its Python module, or its file.
ORIGINS: dict[str, str] = {w.name: "Python, orchestrator/workflows" for w in _PYTHON}
# The shipped files are checked by the tests, so a broken one never reaches an operator's import.
FILES: dict[str, LoadedFile] = read_dir(SHIPPED_DIR, taken=ORIGINS)
ORIGINS.update({name: str(loaded.path) for name, loaded in FILES.items()})

WORKFLOWS: dict[str, Workflow] = {
    **{workflow.name: workflow for workflow in _PYTHON},
    **{name: loaded.workflow for name, loaded in FILES.items()},
}


def add_operator_workflows(directory: Path | None) -> list[str]:
    """Add the workflow files of `directory` (OPSOS_WORKFLOWS_DIR) to WORKFLOWS; the names added.

    Raises WorkflowFileError naming each broken file, step and field, and each name already taken
    (with both files). Adding the same folder again re-reads its files, so this may run once per
    process start whatever calls it first.
    """
    if directory is None:
        return []
    mine = {name for name, loaded in FILES.items() if loaded.path.parent == directory.resolve()}
    loaded = read_dir(directory.resolve(), taken={n: o for n, o in ORIGINS.items() if n not in mine})
    for name, found in loaded.items():
        FILES[name] = found
        ORIGINS[name] = str(found.path)
        WORKFLOWS[name] = found.workflow
    return sorted(loaded)


__all__ = ["FILES", "ORIGINS", "WORKFLOWS", "add_operator_workflows"]
