"""Workflows declared in TOML files, from a catalogue of actions, compiled to the engine's `Workflow` model."""
from orchestrator.workflows.declared.catalogue import AGENTS, CONNECTOR_ACTIONS, Builtin, known_actions
from orchestrator.workflows.declared.load import SHIPPED_DIR, LoadedFile, read_dir, read_file
from orchestrator.workflows.declared.schema import Problem, WorkflowFileError
from orchestrator.workflows.declared.steps import WaitingUntil

__all__ = ["AGENTS", "CONNECTOR_ACTIONS", "SHIPPED_DIR", "Builtin", "LoadedFile", "Problem", "WaitingUntil",
           "WorkflowFileError", "known_actions", "read_dir", "read_file"]
