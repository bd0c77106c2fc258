"""The one protocol every connector implements: an action done once per key, and its compensation."""
from __future__ import annotations

from typing import Protocol, TypeVar

from pydantic import BaseModel

A = TypeVar("A", bound=BaseModel, contravariant=True)
R = TypeVar("R", bound=BaseModel, covariant=True)


class Connector(Protocol[A, R]):
    """An outside system behind keyed actions. Every action and every result is a pydantic model."""

    name: str

    def execute(self, *, action: A, key: str) -> R:
        """Do `action` once per `key`: a repeat with the same key returns the first outcome and does nothing.

        Raises a `ConnectorError`: `ConnectorUnavailable` when trying later may work, `ActionDeclined`
        when the system said no, `UnknownRecord` when the action names a record it does not have.
        """
        ...

    def compensate(self, *, key: str) -> str:
        """Undo what was done under `key` where that can be done, once; say in a line what happened."""
        ...
