"""The classifier the front ends hand to the control plane."""
from __future__ import annotations

from orchestrator import Classifier, Settings, router_classifier


def classifier(settings: Settings) -> Classifier:
    return router_classifier(settings.kinds_file)
