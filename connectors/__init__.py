"""Connectors: idempotent, compensable actions on outside systems (email, payments, CRM)."""
from connectors.crm import AccessChange, Contact, SandboxCrm
from connectors.email import (
    EmailBackend,
    EmailConnector,
    FileEmailBackend,
    OutgoingEmail,
    SentEmail,
    SmtpEmailBackend,
    message_id_for,
)
from connectors.errors import ActionDeclined, CircuitOpen, ConnectorError, ConnectorUnavailable
from connectors.payments import Charge, PaymentReceipt, SandboxPayments
from connectors.resilience import CircuitBreaker, RetryPolicy, with_retries
from connectors.schema import MIGRATIONS

__all__ = [
    "MIGRATIONS",
    "AccessChange",
    "ActionDeclined",
    "Charge",
    "CircuitBreaker",
    "CircuitOpen",
    "ConnectorError",
    "ConnectorUnavailable",
    "Contact",
    "EmailBackend",
    "EmailConnector",
    "FileEmailBackend",
    "OutgoingEmail",
    "PaymentReceipt",
    "RetryPolicy",
    "SandboxCrm",
    "SandboxPayments",
    "SentEmail",
    "SmtpEmailBackend",
    "message_id_for",
    "with_retries",
]
