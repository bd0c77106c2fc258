"""Connectors: idempotent, compensable actions on outside systems (email, payments, CRM, books); contact imports."""
from connectors.books import Categorisation, Categorised, SandboxBooks
from connectors.contact_csv import BadRow, ContactCsv, ContactRow, Header, open_csv
from connectors.contact_import import ImportCounts, import_rows
from connectors.crm import AccessChange, AccessChanged, Contact, ContactCount, Provision, Provisioned, SandboxCrm
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
    BadFile,
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
    "BadFile",
    "BadRow",
    "Categorisation",
    "Categorised",
    "Charge",
    "CircuitBreaker",
    "CircuitOpen",
    "Connector",
    "ConnectorError",
    "ConnectorUnavailable",
    "Contact",
    "ContactCount",
    "ContactCsv",
    "ContactRow",
    "EmailBackend",
    "EmailConnector",
    "Fence",
    "FileEmailBackend",
    "Header",
    "ImportCounts",
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
    "UnknownAction",
    "UnknownRecord",
    "check_fence",
    "fenced",
    "import_rows",
    "message_id_for",
    "open_csv",
    "prune_actions",
    "with_retries",
]
