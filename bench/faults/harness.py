"""One fault-injection run: start the servers and opsos, send the workload, inject the plan, settle, judge."""
from __future__ import annotations

import http.client
import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.faults import checks
from bench.faults.inbound import REQUESTS, SLACK_OPERATOR, TELEGRAM_OPERATOR, TELEGRAM_SECRET, Inbound
from bench.faults.injector import KINDS, Fault, Injector, plan
from bench.faults.servers import Child, Postgres, Redis, Supervisor, free_port
from tests.standins import SlackStandIn, SmtpStandIn, TelegramStandIn

SLACK_TOKEN = "xoxb-faults-token"
SIGNING_SECRET = "faults-signing-secret"
PLATFORMS = ("slack_command", "slack_mention", "telegram")


@dataclass(frozen=True)
class Config:
    seed: int = 1
    runs: int = 12
    workers: int = 2
    faults: int | None = None  # default: two per run
    kinds: tuple[str, ...] = KINDS
    # Seconds between requests, on average; the faults spread over the same span.
    spacing: float = 3.0
    settle_seconds: float = 240.0
    keep: bool = False  # keep the data folder (logs of every process) after the run

    @property
    def fault_count(self) -> int:
        return 2 * self.runs if self.faults is None else self.faults

    @property
    def span(self) -> float:
        return max(5.0, self.runs * self.spacing)


@dataclass(frozen=True)
class Request:
    at: float
    platform: str
    workflow: str
    text: str
    copies: int
    gaps: tuple[float, ...]


def workload(config: Config) -> list[Request]:
    """The requests and how each is redelivered, drawn from the seed (pure)."""
    rng = random.Random(f"workload:{config.seed}")
    moments = sorted(rng.uniform(0, config.span * 0.8) for _ in range(config.runs))
    chosen = []
    for number, at in enumerate(moments):
        # Every other request is a win-back: it carries the approval, the emails, the charges and their undoing.
        workflow, text = REQUESTS[0] if number % 2 == 0 else rng.choice(REQUESTS[1:])
        copies = rng.choice((2, 3))
        chosen.append(Request(at=round(at, 2), platform=rng.choice(PLATFORMS), workflow=workflow,
                              text=text.format(n=number + 1), copies=copies, gaps=tuple(round(rng.uniform(0, 1.5), 2)
                                                                   for _ in range(copies - 1))))
    return chosen


@dataclass
class Outcome:
    config: Config
    faults: list[Fault]
    injected: dict[str, int]
    missed: dict[str, int]
    verdict: checks.Verdict
    elapsed: float
    settled: bool
    restarts: dict[str, int] = field(default_factory=dict)
    data_dir: str = ""


def say(event: str, **fields: Any) -> None:
    parts = " ".join(f"{key}={value}" for key, value in fields.items())
    print(f"faults.{event} {parts}".rstrip(), flush=True)


def _contacts() -> list[Any]:
    from bot.demo import demo_contacts
    from connectors import Contact

    now = datetime.now(UTC)
    extra = [Contact(id=f"c-lapsed-{n:02d}", name=f"Lapsed Reader{n:02d}", email=f"reader{n:02d}@example.com",
                     plan="monthly", status="lapsed", monthly_cents=900, last_paid_at=now - timedelta(days=40 + n))
             for n in range(6)]
    return [*demo_contacts(now), *extra]


def _prepare(url: str) -> list[str]:
    """Schema and the CRM as the demo seeds it (plus a few more lapsed readers); the lapsed customer ids."""
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    from connectors import SandboxCrm
    from orchestrator.migrations import migrate

    with psycopg.connect(url, row_factory=dict_row) as conn:
        migrate(conn)
    contacts = _contacts()
    with ConnectionPool(url, min_size=1, max_size=1, kwargs={"row_factory": dict_row}) as pool:
        SandboxCrm(pool).upsert(contacts)
    return [c.id for c in contacts if c.status == "lapsed"]


def _env(data: Path, pg: Postgres, redis: Redis, smtp: SmtpStandIn, slack: SlackStandIn,
         telegram: TelegramStandIn) -> dict[str, str]:
    return {
        **os.environ, "DATABASE_URL": pg.url, "REDIS_URL": redis.url, "OPSOS_DATA_DIR": str(data / "opsos"),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "OPSOS_OPERATORS": f"slack:{SLACK_OPERATOR},telegram:{TELEGRAM_OPERATOR}",
        "OPSOS_EMAIL_BACKEND": "smtp", "OPSOS_SMTP_HOST": smtp.host, "OPSOS_SMTP_PORT": str(smtp.port),
        "OPSOS_SMTP_TIMEOUT_SECONDS": "10",
        "OPSOS_SLACK_BOT_TOKEN": SLACK_TOKEN, "OPSOS_SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "OPSOS_SLACK_API_URL": slack.api_url,
        "OPSOS_TELEGRAM_BOT_TOKEN": telegram.token, "OPSOS_TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
        "OPSOS_TELEGRAM_API_URL": telegram.base_url,
        "OPSOS_PAYMENT_RETRY_BASE_SECONDS": "0.05", "OPSOS_DELIVERY_POLL_SECONDS": "1",
        # Recovery every few seconds rather than every minute, so a run orphaned by a fault is taken up again
        # within the harness's patience.
        "OPSOS_SCHEDULE_TICK_SECONDS": "2", "OPSOS_RECOVER_EVERY_SECONDS": "3",
        "OPSOS_HOME_CHANNEL": "slack:C0OPS",
    }


class Operator(threading.Thread):
    """The operator at their phone: presses Approve on every approval copy that shows one, each press delivered
    2-3 times; presses again after a while when no press was answered 200 (the web process was down)."""

    def __init__(self, inbound: Inbound, seed: int) -> None:
        super().__init__(daemon=True, name="operator")
        self.inbound, self.rng = inbound, random.Random(f"operator:{seed}")
        self._halt = threading.Event()
        self._last: dict[str, float] = {}

    def run(self) -> None:
        while not self._halt.wait(0.5):
            for platform, approval_id, message in self.inbound.pending_buttons():
                if self.inbound.clicked(approval_id) or time.monotonic() - self._last.get(approval_id, -99) < 5:
                    continue
                if self.inbound.attempts(approval_id) >= 100:
                    continue
                self._last[approval_id] = time.monotonic()
                delivery, body, headers, path = self.inbound.click(platform, approval_id, message)
                copies = self.rng.choice((2, 3))
                for _ in range(copies):
                    self.inbound.deliver(delivery, body, headers, path)
                    time.sleep(self.rng.uniform(0, 0.5))
                say("click", approval=approval_id, platform=platform, answers=delivery.statuses)

    def stop(self) -> None:
        self._halt.set()


# A platform retries what it got no 200 for (Telegram for hours, Slack three times over minutes, an operator
# retypes a slash command): the harness retries that long before it counts the request as never accepted.
RETRY_EVERY = 3.0
RETRY_FOR = 150.0


def _send(inbound: Inbound, request: Request) -> None:
    delivery, body, headers, path = inbound.request(request.platform, request.text)
    for index in range(request.copies):
        if index:
            time.sleep(request.gaps[index - 1])
        inbound.deliver(delivery, body, headers, path)
    give_up = time.monotonic() + RETRY_FOR
    while not delivery.accepted and time.monotonic() < give_up:
        time.sleep(RETRY_EVERY)
        inbound.deliver(delivery, body, headers, path)
    failures = sorted({body for status, body in zip(delivery.statuses, delivery.bodies, strict=True) if status is None})
    say("request", key=delivery.key, platform=request.platform, workflow=request.workflow,
        answers=delivery.statuses, **({"errors": failures} if failures else {}))


def _wait_healthy(url: str, supervisor: Supervisor, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.tend()
        status, _ = _get(url + "/healthz")
        if status == 200:
            return
        time.sleep(0.5)
    raise RuntimeError("the web process never became healthy")


def _get(url: str) -> tuple[int | None, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except (OSError, http.client.HTTPException):
        return None, ""


def _quiet(pg: Postgres, inbound: Inbound) -> bool:
    """Nothing left to do: no live run, no undelivered chat message, no approval copy waiting for a click."""
    live = pg.query("SELECT count(*) FROM runs WHERE state IN ('queued', 'running', 'compensating')")[0][0]
    pending = pg.query("SELECT count(*) FROM outbox WHERE state = 'pending' AND channel IN ('slack', 'telegram')")
    waiting = [a for _, a, _ in inbound.pending_buttons() if not inbound.clicked(a)]
    return live == 0 and pending[0][0] == 0 and not waiting


def run(config: Config) -> Outcome:
    from bot.logs import configure_logging

    configure_logging("warning")
    started = time.monotonic()
    faults = plan(config.seed, count=config.fault_count, span=config.span, kinds=config.kinds)
    requests = workload(config)
    data = Path(tempfile.mkdtemp(prefix="opsos-faults-"))
    data.chmod(0o755)  # as root, pgserver runs PostgreSQL as its own user, who must reach the folder
    say("start", seed=config.seed, runs=config.runs, workers=config.workers, faults=len(faults), data=data)
    pg = Postgres(data)
    redis = Redis(data)
    smtp, slack, telegram = SmtpStandIn().start(), SlackStandIn(token=SLACK_TOKEN).start(), TelegramStandIn().start()
    supervisor: Supervisor | None = None
    try:
        lapsed = _prepare(pg.url)
        env = _env(data, pg, redis, smtp, slack, telegram)
        port = free_port()
        while port in (smtp.port, redis.port):  # the stand-in's own probe may have been handed the same one
            port = free_port()
        logs = data / "logs"
        logs.mkdir()
        children = [Child("web", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, logs / "web.log"),
                    Child("scheduler", ["scheduler"], env, logs / "scheduler.log")]
        children += [Child(f"worker-{n}", ["worker"], env, logs / f"worker-{n}.log") for n in range(config.workers)]
        supervisor = Supervisor(children)
        supervisor.start_all()
        web_url = f"http://127.0.0.1:{port}"
        _wait_healthy(web_url, supervisor)
        say("ready", web=web_url, after=f"{time.monotonic() - started:.1f}s")
        inbound = Inbound(web_url, slack, telegram, SIGNING_SECRET)
        operator = Operator(inbound, config.seed)
        operator.start()
        injector = Injector(faults, pg=pg, redis=redis, supervisor=supervisor, smtp=smtp, slack=slack,
                            telegram=telegram, customers=lapsed, say=say)
        injector.start()
        began = time.monotonic()
        senders = []
        for request in requests:
            while time.monotonic() < began + request.at:
                supervisor.tend()
                time.sleep(0.1)
            sender = threading.Thread(target=_send, args=(inbound, request), daemon=True)
            sender.start()
            senders.append(sender)
        while injector.is_alive() or any(s.is_alive() for s in senders):
            supervisor.tend()
            time.sleep(0.2)
        say("faults_done", injected=sum(injector.injected.values()), after=f"{time.monotonic() - began:.1f}s")
        settled, calm = False, 0
        deadline = time.monotonic() + config.settle_seconds
        while time.monotonic() < deadline:
            supervisor.tend()
            calm = calm + 1 if _quiet(pg, inbound) else 0
            if calm >= 4:  # two seconds with nothing to do: the late deliveries are in
                settled = True
                break
            time.sleep(0.5)
        say("settled" if settled else "settle_timeout", after=f"{time.monotonic() - began:.1f}s")
        operator.stop()
        verdict = checks.judge(pg.harness_url, smtp=smtp, slack=slack, telegram=telegram, inbound=inbound)
        return Outcome(config=config, faults=faults, injected=dict(injector.injected), missed=dict(injector.missed),
                       verdict=verdict, elapsed=time.monotonic() - started, settled=settled,
                       restarts={c.name: c.starts - 1 for c in supervisor.children.values()}, data_dir=str(data))
    finally:
        if supervisor is not None:
            supervisor.stop_all()
        for stand_in in (smtp, slack, telegram):
            stand_in.stop()
        redis.kill()
        pg.stop()
        if not config.keep:
            shutil.rmtree(data, ignore_errors=True)
