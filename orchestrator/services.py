"""The services a process needs, built once from settings: stores, connectors, model tiers, policy, clock."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agents import ModelTiers, build_tiers
from connectors import (
    AccessChange,
    ActionClaims,
    ActionRegistry,
    CancelSubscription,
    Categorisation,
    Charge,
    ConnectorUnavailable,
    CredentialsRejected,
    EmailBackend,
    EmailConnector,
    FileEmailBackend,
    OutgoingEmail,
    PauseCollection,
    Provision,
    Refund,
    ResumeCollection,
    RetryPolicy,
    Route,
    SandboxBooks,
    SandboxCrm,
    SandboxPayments,
    SmtpEmailBackend,
    StripePayments,
    Tagging,
    stripe_client,
)
from memory import ContextCache, LongTermMemory, get_embedder
from orchestrator import words
from orchestrator.action_journal import AuditJournal
from orchestrator.policy import Policy
from orchestrator.settings import Settings
from orchestrator.stores import Stores, open_stores


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    stores: Stores
    email: EmailConnector
    # Both implement the connector protocol and `connectors.PaymentsReads`; `fail_next_charges` and `ledger`
    # are the sandbox's own (the demo, which always runs on the sandbox, uses them).
    payments: SandboxPayments | StripePayments
    crm: SandboxCrm
    books: SandboxBooks
    # Which connector carries each proposed action type (see `action_registry`).
    connectors: ActionRegistry
    models: ModelTiers
    context: ContextCache
    policy: Policy
    payment_retry: RetryPolicy
    # Injected so approval expiry and SLA checks are tested without sleeping.
    clock: Callable[[], datetime] = field(default=utc_now)
    _memory: LongTermMemory | None = field(default=None, repr=False)

    def now(self) -> datetime:
        return self.clock()

    @property
    def memory(self) -> LongTermMemory:
        """Long-term memory, built on first use: it loads the embedding model, which not every process needs."""
        if self._memory is None:
            self._memory = LongTermMemory(self.stores.pool, get_embedder(), clock=lambda: self.clock(),
                                          ef_search=self.settings.memory_ef_search)
        return self._memory

    def close(self) -> None:
        self.stores.close()


def email_backend(settings: Settings) -> EmailBackend:
    if settings.email_backend == "smtp":
        return SmtpEmailBackend(
            host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
            password=settings.smtp_password, starttls=settings.smtp_starttls, timeout=settings.smtp_timeout_seconds,
        )
    return FileEmailBackend(settings.outbox_email_dir)


def action_registry(*, email: EmailConnector, payments: SandboxPayments | StripePayments, crm: SandboxCrm,
                    books: SandboxBooks) -> ActionRegistry:
    """Every action type an agent may propose that an outside system carries, with its connector and model.

    `post_content` is not here: a post is handed to the operator through the outbox (they publish
    it), so nothing outside is touched, and connectors know nothing of chat. A subscription's collection and
    cancellation are here only on Stripe: the sandbox ledger has no subscriptions, and pretending to pause one
    would tell the operator a customer stopped being billed when nothing changed (`proposals.execute` refuses them
    in words). Resuming undoes a pause; a resume and a cancellation are not taken back.
    """
    subscriptions = {
        "pause_collection": Route(payments, PauseCollection, reversible=True),
        "resume_collection": Route(payments, ResumeCollection, reversible=False),
        "cancel_subscription": Route(payments, CancelSubscription, reversible=False),
    } if isinstance(payments, StripePayments) else {}
    return ActionRegistry({
        "send_email": Route(email, OutgoingEmail, reversible=False),
        "charge": Route(payments, Charge, reversible=True),
        "refund": Route(payments, Refund, reversible=False),
        "pause_access": Route(crm, AccessChange, reversible=True),
        "resume_access": Route(crm, AccessChange, reversible=True),
        "provision_account": Route(crm, Provision, reversible=True),
        "tag_contact": Route(crm, Tagging, reversible=True),
        "categorise": Route(books, Categorisation, reversible=True),
        **subscriptions,
    })


def payments_backend(settings: Settings, stores: Stores, claims: ActionClaims) -> SandboxPayments | StripePayments:
    if settings.payments == "stripe" and settings.stripe_api_key is not None:
        client = stripe_client(settings.stripe_api_key.get_secret_value(), api_base=settings.stripe_api_base,
                               timeout=settings.stripe_timeout_seconds)
        return StripePayments(stores.pool, client, claims=claims)
    return SandboxPayments(stores.pool, claims=claims)


def check_payments(services: Services) -> tuple[bool, str]:
    """Whether the payments backend can be used, and the line that tells the operator: one read call with the
    Stripe key (its mode from its prefix, sk_live_ / rk_live_ being live), or the sandbox named as a sandbox."""
    payments = services.payments
    if not isinstance(payments, StripePayments):
        return True, words.PAYMENTS_SANDBOX
    try:
        payments.check()
    except CredentialsRejected as refused:
        return False, words.stripe_key_rejected(str(refused))
    except ConnectorUnavailable as down:
        return False, words.stripe_unreachable(str(down))
    key = services.settings.stripe_api_key
    live = key is not None and "_live_" in key.get_secret_value()
    return True, words.stripe_key_works("live" if live else "test")


def build_services(settings: Settings, stores: Stores | None = None) -> Services:
    stores = stores or open_stores(settings)
    # Every outside action is journalled in the audit chain by the transaction that claims or finishes it.
    journal = AuditJournal(clock=utc_now)
    claims = ActionClaims(seconds=settings.action_claim_seconds, journal=journal)
    email = EmailConnector(stores.pool, email_backend(settings), claims=claims)
    payments = payments_backend(settings, stores, claims)
    crm, books = SandboxCrm(stores.pool, claims=claims), SandboxBooks(stores.pool, claims=claims)
    services = Services(
        settings=settings,
        stores=stores,
        email=email,
        payments=payments,
        crm=crm,
        books=books,
        connectors=action_registry(email=email, payments=payments, crm=crm, books=books),
        models=build_tiers(**settings.tier_options()),
        context=ContextCache(stores.redis, ttl_seconds=settings.context_ttl_seconds),
        policy=Policy(operators=frozenset(settings.operators)),
        payment_retry=RetryPolicy(
            attempts=settings.payment_retry_attempts, base_seconds=settings.payment_retry_base_seconds
        ),
    )
    # The snapshot's TTL and the journal's events run on the services' clock, so a test that moves time moves them.
    services.context.clock = lambda: services.now().timestamp()
    journal.clock = services.now
    return services
