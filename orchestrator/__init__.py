"""The control plane: intents, runs, steps, approvals, policy, the audit log, the outbox, RQ jobs.

This file is the public line: `bot/` imports only the names below (a test keeps it so).
Where things are: a chat message lands in `chat.operations.Operations.handle_text`; an approval is
decided in `chat.decisions`; a connector action is made idempotent by its key (`keys`) in
`connectors/idempotency.py`; a model call's budget is reserved in `budget.calls.call_agent`.
"""
from orchestrator import (
    anchors,
    audit,
    backup,
    buttons,
    contacts,
    database_roles,
    delivery,
    doctor,
    inbound,
    jobs,
    outbox,
    replay,
    retention,
    scheduler,
    upkeep,
    views,
    words,
)
from orchestrator.approvals import Approval, ApprovalState, Decision
from orchestrator.chat import signin
from orchestrator.chat.commands import Command, parse
from orchestrator.chat.decisions import Decided
from orchestrator.chat.operations import Operations
from orchestrator.chat.requester import Requester
from orchestrator.chat.routing import Classification, Classifier, RouterClassifier, router_classifier
from orchestrator.chat.signin import Session
from orchestrator.delivery import (
    CopyGone,
    DeliveryLoop,
    RetryLater,
    Sender,
    deliver_due,
    expire_copies,
    prepare,
    register,
)
from orchestrator.errors import STORES_UNAVAILABLE, NotFound, OpsError
from orchestrator.messages import Action, Attachment, Fact, Message, MessageKind, Section, Style
from orchestrator.migrations import SchemaTooNew
from orchestrator.outbox import OutboxItem
from orchestrator.queue import QUEUE_NAMES, rq_queue
from orchestrator.runs import RunEvent, RunState
from orchestrator.services import Services, check_payments
from orchestrator.settings import Settings
from orchestrator.startup import build_services, workflow_detail, workflow_file_check, workflows_overview
from orchestrator.stores import Stores, open_stores, size_shared_buffers

__all__ = [
    "QUEUE_NAMES",
    "STORES_UNAVAILABLE",
    "Action",
    "Approval",
    "ApprovalState",
    "Attachment",
    "Classification",
    "Classifier",
    "Command",
    "CopyGone",
    "Decided",
    "Decision",
    "DeliveryLoop",
    "Fact",
    "Message",
    "MessageKind",
    "NotFound",
    "Operations",
    "OpsError",
    "OutboxItem",
    "Requester",
    "RetryLater",
    "RouterClassifier",
    "RunEvent",
    "RunState",
    "SchemaTooNew",
    "Section",
    "Sender",
    "Services",
    "Session",
    "Settings",
    "Stores",
    "Style",
    "anchors",
    "audit",
    "backup",
    "build_services",
    "buttons",
    "check_payments",
    "contacts",
    "database_roles",
    "deliver_due",
    "delivery",
    "doctor",
    "expire_copies",
    "inbound",
    "jobs",
    "open_stores",
    "outbox",
    "parse",
    "prepare",
    "register",
    "replay",
    "retention",
    "router_classifier",
    "rq_queue",
    "scheduler",
    "signin",
    "size_shared_buffers",
    "upkeep",
    "views",
    "words",
    "workflow_detail",
    "workflow_file_check",
    "workflows_overview",
]
