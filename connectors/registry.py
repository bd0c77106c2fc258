"""The action registry: which connector carries each proposed action type, and the action model it takes."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from connectors.errors import UnknownAction
from connectors.protocol import Connector


@dataclass(frozen=True)
class Route:
    connector: Connector[Any, Any]
    model: type[BaseModel]
    # Whether `compensate` takes the action back when a later step fails: a sent email or a refund cannot be.
    reversible: bool


class ActionRegistry:
    """Action types to routes, fixed at construction; the only place an action type picks its connector."""

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._routes = dict(routes)

    @property
    def action_types(self) -> frozenset[str]:
        return frozenset(self._routes)

    def route(self, action_type: str) -> Route:
        """The route of `action_type`; raises UnknownAction when no connector carries it."""
        try:
            return self._routes[action_type]
        except KeyError as e:
            known = tuple(sorted(self._routes))
            raise UnknownAction(f"no connector carries “{action_type}” actions (known: {', '.join(known)})",
                                action_type=action_type, known=known) from e

    def execute(self, action_type: str, *, action: BaseModel, key: str) -> BaseModel:
        """Run `action` through the connector of `action_type`, once per key.

        Raises UnknownAction for an unknown type or an action of another model than the route's, so
        a charge can never reach the CRM because two dicts looked alike; otherwise what the connector raises.
        """
        route = self.route(action_type)
        if not isinstance(action, route.model):
            raise UnknownAction(
                f"“{action_type}” takes {route.model.__name__}, not {type(action).__name__}",
                action_type=action_type, known=tuple(sorted(self._routes)),
            )
        return route.connector.execute(action=action, key=key)

    def compensate(self, action_type: str, *, key: str) -> str:
        return self.route(action_type).connector.compensate(key=key)
