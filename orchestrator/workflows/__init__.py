"""The workflows opsos can run, by name."""
from orchestrator.steps import Workflow
from orchestrator.workflows.winback import WINBACK

WORKFLOWS: dict[str, Workflow] = {workflow.name: workflow for workflow in (WINBACK,)}

__all__ = ["WORKFLOWS"]
