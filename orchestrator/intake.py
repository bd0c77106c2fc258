"""Intake: from a request in words to a classified intent kind and the workflow it starts."""
from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field


class Classification(BaseModel):
    kind: str | None
    workflow: str | None = None
    confidence: float = 0.0
    closest: list[str] = Field(default_factory=list)


class Classifier(Protocol):
    def classify(self, text: str) -> Classification: ...


class KeywordClassifier:
    """Recognises the win-back workflow by its words."""

    KEYWORDS = ("win-back", "winback", "win back", "lapsed", "churned", "re-engage")

    def classify(self, text: str) -> Classification:
        lowered = text.lower()
        if any(word in lowered for word in self.KEYWORDS):
            return Classification(kind="winback_campaign", workflow="winback", confidence=1.0)
        return Classification(kind=None, closest=["winback_campaign"])
