"""The demo: a solo creator's subscription funnel played through the real stack, printed as a chat transcript."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from bot.console import ConsoleSession, OutboxListener
from bot.workers import start_worker, stop_worker
from connectors import Contact, SandboxPayments
from orchestrator import MessageKind, Operations, Settings, audit, build_services, router_classifier

REQUEST = "grow MRR: launch a win-back campaign to lapsed subscribers"
DECLINING = "c-eve"


def demo_contacts(now: datetime) -> list[Contact]:
    def lapsed(cid: str, name: str, email: str, cents: int, days: int) -> Contact:
        return Contact(id=cid, name=name, email=email, plan="monthly", status="lapsed", access="active",
                       monthly_cents=cents, last_paid_at=now - timedelta(days=days))

    return [
        lapsed("c-ana", "Ana Souza", "ana@example.com", 1200, 34),
        lapsed("c-ben", "Ben Okafor", "ben@example.com", 1200, 41),
        lapsed("c-chloe", "Chloé Martin", "chloe@example.com", 2400, 38),
        lapsed("c-dev", "Dev Patel", "dev@example.com", 1200, 55),
        lapsed(DECLINING, "Eve Lindqvist", "eve@example.com", 1200, 33),
        Contact(id="c-fay", name="Fay Moreau", email="fay@example.com", plan="yearly", status="active",
                monthly_cents=1000, last_paid_at=now - timedelta(days=3)),
    ]


def run_demo(base: Settings, write: Callable[[str], None] = print) -> int:
    # The demo keeps its own embedded servers and data, so it never writes into the operator's real workspace.
    settings = base.model_copy(update={
        "database_url": None, "redis_url": None, "data_dir": base.data_dir / "demo", "email_dir": None,
        "operators": [*base.operators, "console:operator"], "payment_retry_base_seconds": 0.2,
        # The demo's declines are scripted in the sandbox, whatever backend the operator's workspace uses.
        "payments": "sandbox",
    })
    write("━━ opsos demo: a solo creator's subscription funnel, through the real stack ━━")
    write(f"   data: {settings.data_dir} (embedded PostgreSQL 16 + pgvector, embedded Redis)")
    services = build_services(settings)
    worker = start_worker(services.stores, settings)
    listener = OutboxListener(services.stores.database_url)
    try:
        services.crm.upsert(demo_contacts(services.now()))
        payments = services.payments
        assert isinstance(payments, SandboxPayments), "the demo runs on the sandbox ledger"
        payments.fail_next_charges(DECLINING, reason="card_declined")
        write(f"   seeded the sandbox CRM: 5 lapsed subscribers, {DECLINING}'s card will be declined")
        write(f"   drafting tier: {settings.draft_model} (deterministic templates, no key); worker pid {worker.pid}")
        ops = Operations(services, router_classifier(settings.kinds_file))
        session = ConsoleSession(ops, identity="console:operator", write=write)

        write("\n[1] The operator asks")
        write(f"you   ▸ {REQUEST}")
        ack = session.say(REQUEST)
        if ack.kind is not MessageKind.ACK or ack.run_id is None:
            return 1

        write("\n[2] A worker takes the run from RQ; the content agent drafts; policy asks for an approval")
        session.wait_for(MessageKind.APPROVAL_REQUEST, listener=listener)

        write("\n[3] The operator asks why, then presses Approve")
        write("you   ▸ [why?]")
        session.say("why")
        write("you   ▸ [approve]")
        session.say("approve")

        write("\n[4] The emails go out; one renewal is declined: retries, an alert, a compensating step")
        report = session.wait_for(MessageKind.REPORT, listener=listener)

        write("\n[5] The operator checks the status")
        write("you   ▸ status")
        session.say("status")

        with services.stores.pool.connection() as conn:
            chain = audit.verify(conn)
        emails = sorted(Path(settings.outbox_email_dir).glob("*.eml"))
        write("\n[6] Behind the transcript")
        write(f"   audit chain: {'intact' if chain.ok else 'BROKEN'}, {chain.checked} events verified")
        write(f"   emails: {len(emails)} .eml files in {settings.outbox_email_dir} (open them with any mail client)")
        ledger = payments.ledger()
        write(f"   payments ledger: {sum(1 for e in ledger if e['status'] == 'succeeded')} charges succeeded, "
              f"{sum(1 for e in ledger if e['status'] == 'failed')} declined attempts")
        eve = services.crm.get(DECLINING)
        write(f"   {eve.name if eve else DECLINING}'s access: {eve.access if eve else '?'}")
        return 0 if chain.ok and report.title.startswith(f"Run #{ack.run_id} succeeded") else 1
    finally:
        listener.close()
        stop_worker(worker)
        services.close()
