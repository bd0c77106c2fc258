"""The faults: which kinds, when, and against what, all drawn up front from the seed; applied by one thread.

The plan (kind, moment, pick, duration) is a pure function of the seed and the configuration, so a seed names
the same sequence of faults on every machine; what each fault hits at its moment (which backend holds which
run's lock) depends on timing and is logged as it happens.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.faults.servers import Postgres, Redis, Supervisor
from tests.standins import SlackStandIn, SmtpStandIn, TelegramStandIn

KINDS = (
    "kill_worker", "kill_web", "terminate_backend", "terminate_lock_holder", "restart_postgres", "restart_redis",
    "flush_redis", "smtp_slow", "smtp_fail", "smtp_drop", "slack_slow", "slack_fail", "slack_drop",
    "telegram_slow", "telegram_fail", "telegram_drop", "payment_decline",
)
SET_FAULT = """
INSERT INTO payments_sandbox_faults (customer, reason, failures_left) VALUES (%s, 'card_declined', 1)
ON CONFLICT (customer) DO UPDATE SET reason = excluded.reason, failures_left = excluded.failures_left
"""


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the workload starts
    kind: str
    pick: float  # in [0, 1): which of the candidates (worker, backend, lock holder, customer) it hits
    seconds: float  # how long a process or server stays down, or how late a slow answer comes


def plan(seed: int, *, count: int, span: float, kinds: tuple[str, ...]) -> list[Fault]:
    """`count` faults spread over `span` seconds, kinds drawn evenly from `kinds` (pure)."""
    rng = random.Random(f"faults:{seed}")
    moments = sorted(rng.uniform(0.5, span) for _ in range(count))
    return [Fault(at=round(at, 2), kind=rng.choice(kinds), pick=rng.random(), seconds=round(rng.uniform(0.5, 4), 2))
            for at in moments]


def _chosen(pick: float) -> Callable[[list[Any]], Any]:
    return lambda candidates: candidates[int(pick * len(candidates))]


class Injector(threading.Thread):
    """Applies the plan on time; `injected` counts what was done by kind, `missed` what found nothing to hit."""

    def __init__(self, faults: list[Fault], *, pg: Postgres, redis: Redis, supervisor: Supervisor,
                 smtp: SmtpStandIn, slack: SlackStandIn, telegram: TelegramStandIn, customers: list[str],
                 say: Callable[..., None]) -> None:
        super().__init__(daemon=True, name="fault-injector")
        self.faults, self.pg, self.redis, self.supervisor = faults, pg, redis, supervisor
        self.smtp, self.slack, self.telegram, self.customers, self.say = smtp, slack, telegram, customers, say
        self.injected: Counter[str] = Counter()
        self.missed: Counter[str] = Counter()
        self.errors: list[str] = []
        self.started_at = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        self.started_at = time.monotonic()
        for number, fault in enumerate(self.faults, 1):
            if self._halt.wait(max(0.0, self.started_at + fault.at - time.monotonic())):
                return
            try:
                target = self.apply(fault)
            except (psycopg.Error, OSError, RuntimeError) as error:
                self.errors.append(f"{fault.kind}: {error}")
                target = f"error: {error}"
            if target is None:
                self.missed[fault.kind] += 1
            else:
                self.injected[fault.kind] += 1
            self.say("fault", n=number, kind=fault.kind, at=fault.at, target=target or "nothing to hit")

    def stop(self) -> None:
        self._halt.set()

    def apply(self, fault: Fault) -> str | None:
        """Do one fault now; a few words on what it hit, or None when there was nothing to hit."""
        kind, choose, down = fault.kind, _chosen(fault.pick), fault.seconds
        if kind in ("kill_worker", "kill_web"):
            candidates = self.supervisor.workers() if kind == "kill_worker" else [self.supervisor.children["web"]]
            child = choose(candidates)
            child.held_until = time.monotonic() + down
            child.kill()
            return f"{child.name} SIGKILLed, back in {down}s"
        if kind == "terminate_backend":
            pid = self.pg.terminate_backend(choose)
            return None if pid is None else f"backend {pid}"
        if kind == "terminate_lock_holder":
            # Between steps no run may be held: wait a little for one to be taken.
            until = time.monotonic() + 5
            while (held := self.pg.terminate_lock_holder(choose)) is None and time.monotonic() < until:
                time.sleep(0.1)
            return None if held is None else f"backend {held[0]} holding run {held[1]}"
        if kind == "restart_postgres":
            self.pg.restart()
            return "PostgreSQL restarted (fast)"
        if kind == "restart_redis":
            self.redis.restart(down_seconds=down)
            return f"Redis down {down}s, back empty"
        if kind == "flush_redis":
            self.redis.flush()
            return "FLUSHALL"
        if kind == "payment_decline":
            customer = choose(self.customers)
            self.pg.query(SET_FAULT, (customer,))
            return f"next charge of {customer} declined"
        return self._stand_in(kind, down)

    def _stand_in(self, kind: str, down: float) -> str:
        service, mode = kind.split("_")
        if service == "smtp":
            if mode == "slow":
                self.smtp.slow_next(seconds=down)
            elif mode == "fail":
                self.smtp.fail_next()
            else:
                self.smtp.drop_next()
            return f"next SMTP message {mode}"
        api, method = (self.slack, "chat.postMessage") if service == "slack" else (self.telegram, "sendMessage")
        if mode == "slow":
            api.slow_next(method, seconds=down)
        elif mode == "fail":
            api.fail_next(method)
        else:
            api.drop_next(method)
        return f"next {method} {mode}"
