"""The fault harness itself, in small: two requests, one worker SIGKILLed and one PostgreSQL session ended while
they run, and the outside world must show no duplicate and no loss."""
from __future__ import annotations

from bench.faults.harness import Config, run
from bench.faults.injector import plan

SMOKE = Config(seed=7, runs=2, workers=1, faults=2, kinds=("kill_worker", "terminate_lock_holder"), spacing=4.0,
               settle_seconds=120.0)


def test_fault_plan_is_the_same_for_the_same_seed() -> None:
    """Which faults a seed names, and when, is fixed: a failing seed reproduces the same sequence."""
    first = plan(3, count=20, span=30.0, kinds=("kill_worker", "restart_redis", "smtp_drop"))
    assert first == plan(3, count=20, span=30.0, kinds=("kill_worker", "restart_redis", "smtp_drop"))
    assert first != plan(4, count=20, span=30.0, kinds=("kill_worker", "restart_redis", "smtp_drop"))
    assert [f.at for f in first] == sorted(f.at for f in first)


def test_a_killed_worker_and_an_ended_lock_session_duplicate_and_lose_nothing() -> None:
    """Through the real web process and real workers: every accepted request has its intent, every run ends or
    waits with a reason, no email, charge or chat message is delivered twice, the audit chain verifies."""
    outcome = run(SMOKE)
    verdict = outcome.verdict
    assert outcome.settled, f"work still live after {SMOKE.settle_seconds}s: runs {verdict.unfinished}"
    assert verdict.requests_accepted == SMOKE.runs
    assert sum(outcome.injected.values()) + sum(outcome.missed.values()) == 2
    assert not verdict.duplicates, verdict.duplicate_detail
    assert not verdict.losses, verdict.loss_detail
    assert not verdict.unfinished and not verdict.held_without_reason
    assert verdict.audit_ok, verdict.audit_error
    assert verdict.open_reservations == 0
