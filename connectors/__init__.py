"""Connectors: idempotent, compensable actions on outside systems (email, payments, CRM, books)."""
from connectors.books import Categorisation, Categorised, SandboxBooks
from connectors.crm import (
    AccessChange,
    AccessChanged,
    Contact,
    Provision,
    Provisioned,
    SandboxCrm,
    StatusChange,
    StatusChanged,
)
from connectors.email import (
    EmailBackend,
    EmailConnector,
    FileEmailBackend,
    OutgoingEmail,
    SentEmail,
    SmtpEmailBackend,
    message_id_for,
)
from connectors.errors import (
    ActionDeclined,
    ActionInProgress,
    CircuitOpen,
    ConnectorError,
    ConnectorUnavailable,
    UnknownAction,
    UnknownRecord,
)
from connectors.fencing import Fence, check_fence, fenced
from connectors.idempotency import ActionClaims, ActionEvent, ActionJournal, ActionRecord
from connectors.payments import Charge, PaymentReceipt, Refund, RefundReceipt, SandboxPayments
from connectors.protocol import Connector
from connectors.registry import ActionRegistry, Route
from connectors.resilience import CircuitBreaker, RetryPolicy, with_retries
from connectors.retention import prune_actions
from connectors.schema import MIGRATIONS

__all__ = [
    "MIGRATIONS",
    "AccessChange",
    "AccessChanged",
    "ActionClaims",
    "ActionDeclined",
    "ActionEvent",
    "ActionInProgress",
    "ActionJournal",
    "ActionRecord",
    "ActionRegistry",
    "Categorisation",
    "Categorised",
    "Charge",
    "CircuitBreaker",
    "CircuitOpen",
    "Connector",
    "ConnectorError",
    "ConnectorUnavailable",
    "Contact",
    "EmailBackend",
    "EmailConnector",
    "Fence",
    "FileEmailBackend",
    "OutgoingEmail",
    "PaymentReceipt",
    "Provision",
    "Provisioned",
    "Refund",
    "RefundReceipt",
    "RetryPolicy",
    "Route",
    "SandboxBooks",
    "SandboxCrm",
    "SandboxPayments",
    "SentEmail",
    "SmtpEmailBackend",
    "StatusChange",
    "StatusChanged",
    "UnknownAction",
    "UnknownRecord",
    "check_fence",
    "fenced",
    "message_id_for",
    "prune_actions",
    "with_retries",
]
