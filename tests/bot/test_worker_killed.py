"""A worker killed with SIGKILL in the middle of sending: the run is picked up again and nobody gets two emails."""
import os
import signal
import subprocess
import sys
import time

import pytest

from orchestrator import Decision
from tests.orchestrator.helpers import OPERATOR, WINBACK, count, operations, pending_approval, run_state, seed
from tests.standins.smtp import SmtpStandIn


@pytest.fixture
def smtp():
    with SmtpStandIn() as server:
        yield server


def _worker(database_url, redis_url, smtp, tmp_path, *extra: str) -> subprocess.Popen:
    # The killed worker's claim on the email it was sending keeps every other worker off that key until it runs
    # out (300 s by default, longer than any live send). A short claim lets the burst worker wait it out in
    # process and then take the key over, as a worker would after the default time: the stand-in never accepted
    # that message, so taking it over sends it once.
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "OPSOS_DATA_DIR": str(tmp_path),
           "OPSOS_EMAIL_BACKEND": "smtp", "OPSOS_SMTP_HOST": smtp.host, "OPSOS_SMTP_PORT": str(smtp.port),
           "OPSOS_PAYMENT_RETRY_BASE_SECONDS": "0.01", "OPSOS_ACTION_CLAIM_SECONDS": "3"}
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "--log-level", "warning", "worker", *extra], env=env)


def _until(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError("condition not met")


def test_worker_killed_mid_send_is_resumed_without_duplicate_email_or_charge(
    services, db, database_url, redis_url, smtp, tmp_path
):
    seed(services, declining=None)
    ops = operations(services)
    ops.submit(OPERATOR, WINBACK)
    worker = _worker(database_url, redis_url, smtp, tmp_path)
    try:
        _until(lambda: run_state(db, 1) == "awaiting_approval")
        smtp.hold_for("chloe@example.com")
        ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
        assert smtp.held.wait(60), "the worker never reached the third recipient"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert smtp.dropped_event.wait(10), "the held message should be dropped with its connection"
    assert [m.rcpt_tos for m in smtp.messages] == [["ana@example.com"], ["ben@example.com"]]
    assert run_state(db, 1) == "running"

    # A fresh worker finds the orphaned run (nobody holds its lock) and finishes it.
    again = _worker(database_url, redis_url, smtp, tmp_path, "--burst")
    assert again.wait(120) == 0
    assert run_state(db, 1) == "succeeded"
    recipients = sorted(r for m in smtp.messages for r in m.rcpt_tos)
    assert recipients == sorted(["ana@example.com", "ben@example.com", "chloe@example.com", "dev@example.com",
                                 "eve@example.com"])
    assert count(db, "payments_ledger", "status = 'succeeded'") == 5
    assert count(db, "outbox", "kind = 'report'") == 1
