"""Connectors: idempotent, compensable actions on outside systems (email, payments, CRM, books)."""
from connectors.books import Categorisation, Categorised, SandboxBooks
from connectors.crm import AccessChange, AccessChanged, Contact, Provision, Provisioned, SandboxCrm
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
from connectors.inbound_email import AttachmentNote, InboundEmail, Unreadable, new_text, read_email, read_header
from connectors.mailbox import Fetched, FolderState, ImapMailbox, MailboxSession
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
    "AttachmentNote",
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
    "Fetched",
    "FileEmailBackend",
    "FolderState",
    "ImapMailbox",
    "InboundEmail",
    "MailboxSession",
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
    "Unreadable",
    "check_fence",
    "fenced",
    "message_id_for",
    "new_text",
    "prune_actions",
    "read_email",
    "read_header",
    "with_retries",
]
