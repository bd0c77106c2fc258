"""Intake: from a request in words to an intent kind and the workflow it starts, by the routing tier."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from agents import KindRegistry, Router, default_registry_path
from memory import get_embedder

# A lead smaller than this over the runner-up is no lead: the router asks instead of choosing.
AMBIGUOUS_MARGIN = 0.03


# A whole message that is one email address, or one amount in a currency ("€40", "40 euros", "$12.50").
_BARE_VALUE = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|(?:[$€£]|usd|eur|gbp)?\s?\d+(?:[.,]\d{1,2})?\s?(?:[$€£]|usd|eur|gbp|dollars?|euros?|pounds?)?",
    re.IGNORECASE,
)


def is_bare_value(text: str) -> bool:
    """Whether `text` is nothing but a value (an email address or an amount), so it asks for nothing (pure).

    Such a message carries no goal, yet the router can score it confidently: a bare address lands
    near the outreach examples ("email ana@…"). After opsos asked for a parameter it is the answer.
    """
    return _BARE_VALUE.fullmatch(text.strip()) is not None


class Classification(BaseModel):
    kind: str | None
    workflow: str | None = None
    confidence: float = 0.0
    closest: list[str] = Field(default_factory=list)
    # The closest kinds with the workflow each would start, for "Did you mean …?" buttons.
    alternatives: list[tuple[str, str]] = Field(default_factory=list)


class Classifier(Protocol):
    def classify(self, text: str) -> Classification: ...


class RouterClassifier:
    """The embedding router over the operator's registry of kinds: below its threshold it does not guess."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def classify(self, text: str) -> Classification:
        result = self.router.route(text)
        closest = [name for name, _ in result.runners_up]
        if result.in_scope and result.kind and result.runners_up and (
                result.confidence - result.runners_up[0][1] < AMBIGUOUS_MARGIN):
            # Two kinds about equally close ("pause Ben's access" scores resume nearly as high as pause):
            # guessing would do the opposite of what was asked half the time, so the operator picks.
            closest = [result.kind, result.runners_up[0][0]]
            alternatives = [(name, self.router.registry.get(name).workflow) for name in closest]
            return Classification(kind=None, confidence=result.confidence, closest=closest, alternatives=alternatives)
        alternatives = [(name, self.router.registry.get(name).workflow) for name in closest]
        if not result.in_scope or result.kind is None:
            return Classification(kind=None, confidence=result.confidence, closest=closest, alternatives=alternatives)
        kind = self.router.registry.get(result.kind)
        return Classification(kind=kind.name, workflow=kind.workflow, confidence=result.confidence, closest=closest,
                              alternatives=alternatives)


@lru_cache(maxsize=4)
def router_classifier(kinds_file: Path | None = None) -> RouterClassifier:
    """One router per process and registry: the model loads once and the examples are embedded once."""
    registry = KindRegistry.load(kinds_file or default_registry_path())
    return RouterClassifier(Router(registry, get_embedder()))
