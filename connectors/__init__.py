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
    ActionRejected,
    CircuitOpen,
    ConnectorError,
    ConnectorUnavailable,
    CredentialsRejected,
    UnknownAction,
    UnknownRecord,
)
from connectors.fencing import Fence, check_fence, fenced
from connectors.idempotency import ActionClaims, ActionEvent, ActionJournal, ActionRecord
from connectors.payments import (
    Charge,
    PaymentReceipt,
    PaymentsReads,
    Refund,
    RefundableCharge,
    RefundReceipt,
    SandboxPayments,
)
from connectors.protocol import Connector
from connectors.registry import ActionRegistry, Route
from connectors.resilience import CircuitBreaker, RetryPolicy, with_retries
from connectors.retention import prune_actions
from connectors.schema import MIGRATIONS
from connectors.stripe import (
    CancelSubscription,
    PauseCollection,
    ResumeCollection,
    StripeCustomer,
    StripeInvoice,
    StripePayments,
    StripeSubscription,
    SubscriptionChanged,
    stripe_client,
)

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
    "ActionRejected",
    "CancelSubscription",
    "Categorisation",
    "Categorised",
    "Charge",
    "CircuitBreaker",
    "CircuitOpen",
    "Connector",
    "ConnectorError",
    "ConnectorUnavailable",
    "Contact",
    "CredentialsRejected",
    "EmailBackend",
    "EmailConnector",
    "Fence",
    "FileEmailBackend",
    "OutgoingEmail",
    "PauseCollection",
    "PaymentReceipt",
    "PaymentsReads",
    "Provision",
    "Provisioned",
    "Refund",
    "RefundReceipt",
    "RefundableCharge",
    "ResumeCollection",
    "RetryPolicy",
    "Route",
    "SandboxBooks",
    "SandboxCrm",
    "SandboxPayments",
    "SentEmail",
    "SmtpEmailBackend",
    "StripeCustomer",
    "StripeInvoice",
    "StripePayments",
    "StripeSubscription",
    "SubscriptionChanged",
    "UnknownAction",
    "UnknownRecord",
    "check_fence",
    "fenced",
    "message_id_for",
    "prune_actions",
    "stripe_client",
    "with_retries",
]
