"""Shared steps of the orchestrator tests: seed the sandbox CRM, make requests as the operator."""
from datetime import UTC, datetime

from bot.demo import demo_contacts
from orchestrator import Decision, Operations, Requester, router_classifier

OPERATOR = Requester(identity="console:operator", channel="console", conversation="console:test", private=True)
STRANGER = Requester(identity="telegram:999", channel="telegram", conversation="telegram:999")
WINBACK = "grow MRR: launch a win-back campaign to lapsed subscribers"


def seed(services, *, declining: str | None = "c-eve") -> None:
    services.crm.upsert(demo_contacts(datetime.now(UTC)))
    if declining:
        services.payments.fail_next_charges(declining)


def operations(services) -> Operations:
    return Operations(services, router_classifier(services.settings.kinds_file))


def to_approval(services, work, ops: Operations | None = None) -> tuple[Operations, str]:
    """Ask for the win-back campaign and run it to its approval: the operations it used and the pending approval."""
    ops = ops or operations(services)
    ops.submit(OPERATOR, WINBACK)
    work()
    assert run_state(services.stores.pool, 1) == "awaiting_approval"
    return ops, pending_approval(services.stores.pool, 1)


def approve_and_finish(services, work, ops: Operations | None = None) -> Operations:
    """Ask for the win-back campaign, approve it as the operator and run it to its end."""
    ops, approval_id = to_approval(services, work, ops)
    ops.decide(OPERATOR, approval_id, Decision.APPROVED)
    work()
    return ops


def count(db, table: str, where: str = "true") -> int:
    with db.connection() as conn:
        return conn.execute(f"SELECT count(*) AS n FROM {table} WHERE {where}").fetchone()["n"]


def run_state(db, run_id: int) -> str:
    with db.connection() as conn:
        return conn.execute("SELECT state FROM runs WHERE id = %s", (run_id,)).fetchone()["state"]


def pending_approval(db, run_id: int) -> str:
    with db.connection() as conn:
        return conn.execute(
            "SELECT id FROM approvals WHERE run_id = %s AND state = 'pending'", (run_id,)
        ).fetchone()["id"]


def break_winback_at_the_end(monkeypatch) -> None:
    """Give the win-back workflow a last step that raises, after the emails and renewals are done."""
    from orchestrator.workflows import WORKFLOWS, winback
    from orchestrator.workflows.model import Step

    def explode(ctx):
        raise ValueError("the CRM answered nonsense")

    broken = winback.WINBACK.__class__(
        name="winback", title="win-back campaign", describe="",
        steps=(*winback.WINBACK.steps, Step("sync_crm", winback.Effect.READ, explode)),
    )
    monkeypatch.setitem(WORKFLOWS, "winback", broken)


HOLDER = """
SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND objsubid = 2 AND granted
"""


def terminate_lock_holder(db, run_id: int) -> None:
    """End the session that holds the run's lock, under a worker that is still alive: what PostgreSQL's
    `pg_terminate_backend`, a pooler or a failover does."""
    from orchestrator.ownership import RUN_LOCK_CLASS

    with db.connection() as conn:
        pids = [row["pid"] for row in conn.execute(HOLDER, (RUN_LOCK_CLASS, run_id)).fetchall()]
        assert len(pids) == 1, "one session holds the run's lock"
        # With a timeout it waits for the session to be gone, and its lock with it: a worker taking the run next
        # must find it free, not still held by a session on its way out.
        assert conn.execute("SELECT pg_terminate_backend(%s, 10000) AS gone", (pids[0],)).fetchone()["gone"]


def pay_through_stripe(services, stripe_api) -> None:
    """Switch `services` to payments on the Stripe stand-in (`stripe_api`), with the registry's Stripe-only routes,
    fast retries and no sleeping, as `OPSOS_PAYMENTS=stripe` would set it up against Stripe itself."""
    from connectors import CircuitBreaker, RetryPolicy, StripePayments, stripe_client
    from orchestrator.services import action_registry
    from tests.standins.stripe_api import API_KEY

    services.payments = StripePayments(services.stores.pool, stripe_client(API_KEY, api_base=stripe_api.url),
                                       claims=services.payments.claims,
                                       retry=RetryPolicy(attempts=2, base_seconds=0.01, retry_declines=False),
                                       breaker=CircuitBreaker("stripe", threshold=50), sleep=lambda _s: None)
    services.connectors = action_registry(email=services.email, payments=services.payments, crm=services.crm,
                                          books=services.books)
