"""The agents' errors: one root for what this layer raises on purpose, each carrying what the caller needs."""
from __future__ import annotations

from pathlib import Path


class AgentError(Exception):
    """Root of every error the agents layer raises on purpose."""


class RegistryError(AgentError, ValueError):
    """A kinds file that cannot be used; the message names the file and the kind at fault."""

    def __init__(self, message: str, *, path: Path | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind


class TierCannotDraft(AgentError):
    """The configured tier cannot produce what an agent asks for (the offline drafter has no template for it)."""

    def __init__(self, output: str) -> None:
        super().__init__(f"the offline drafter has no template for {output}; configure a real model tier")
        self.output = output
