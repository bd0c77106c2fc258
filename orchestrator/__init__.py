"""The control plane: intents, runs, steps, approvals, policy, the audit log, the outbox, RQ jobs."""
from orchestrator import audit, outbox, replay, words
from orchestrator.approvals import Approval, ApprovalState, Decision
from orchestrator.errors import OpsError
from orchestrator.intake import Classification, Classifier, RouterClassifier, router_classifier
from orchestrator.messages import Action, Fact, Message, MessageKind, Section, Style
from orchestrator.ops import Decided, Operations, Requester
from orchestrator.outbox import OutboxItem
from orchestrator.queue import QUEUE_NAMES
from orchestrator.runs import RunState
from orchestrator.services import Services, build_services
from orchestrator.settings import Settings
from orchestrator.stores import Stores, open_stores

__all__ = [
    "QUEUE_NAMES",
    "Action",
    "Approval",
    "ApprovalState",
    "Classification",
    "Classifier",
    "Decided",
    "Decision",
    "Fact",
    "Message",
    "MessageKind",
    "Operations",
    "OpsError",
    "OutboxItem",
    "Requester",
    "RouterClassifier",
    "RunState",
    "Section",
    "Services",
    "Settings",
    "Stores",
    "Style",
    "audit",
    "build_services",
    "open_stores",
    "outbox",
    "replay",
    "router_classifier",
    "words",
]
