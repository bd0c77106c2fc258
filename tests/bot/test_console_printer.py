"""The console's outbox printer survives a database outage: it says so, waits, and goes on printing."""
from __future__ import annotations

import time

import psycopg

from bot.console import ConsoleSession, OutboxPrinter
from orchestrator import Message, MessageKind
from tests.orchestrator.helpers import operations


def test_the_printer_outlives_a_failing_database_and_prints_what_came_meanwhile(services, db, monkeypatch):
    """Before, the first database error ended the thread silently: `opsos chat` went on without ever printing."""
    printed: list[str] = []
    session = ConsoleSession(operations(services), identity="console:operator", write=printed.append)
    real = session.deliver_pending
    failures = {"left": 2}

    def flaky():
        if failures["left"]:
            failures["left"] -= 1
            raise psycopg.OperationalError("the database system is shutting down")
        return real()

    monkeypatch.setattr(session, "deliver_pending", flaky)
    monkeypatch.setattr(OutboxPrinter, "RETRY_SECONDS", 0.05)
    printer = OutboxPrinter(session)
    printer.start()
    session.ops.post(session.who, Message(kind=MessageKind.NOTICE, title="still here after the outage"))
    deadline = time.monotonic() + 20
    while not any("still here after the outage" in line for line in printed) and time.monotonic() < deadline:
        time.sleep(0.05)
    printer.stop()
    printer.join(5)
    assert failures["left"] == 0
    assert any("still here after the outage" in line for line in printed)
