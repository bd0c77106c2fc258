"""Slack ack latency of `/ops <request>` under 100 concurrent signed requests, next to a bare bolt app that only acks.

Ours writes the intent, its run and audit events to PostgreSQL and enqueues the run in Redis before it
acks (the ack names the intent); the bare app acks at once. Both run on the same aiohttp + bolt stack,
on 127.0.0.1, with the embedded PostgreSQL and Redis. Run: `python -m bench.bench_slack_ack`.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

REQUEST = "grow MRR: launch a win-back campaign to lapsed subscribers"
USER = "U0OPERATOR"


def _say(message: str) -> None:
    print(message, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/slack/events"


def _bare_app(signing_secret: str, token: str, api_url: str) -> web.Application:
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    bolt = AsyncApp(signing_secret=signing_secret, client=AsyncWebClient(token=token, base_url=api_url))

    @bolt.command("/ops")
    async def only_ack(ack: AsyncAck) -> None:
        await ack()

    async def handle(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    return app


NAMED = "On it: intent #"
DEFERRED = "Got it"


async def _round(session: aiohttp.ClientSession, url: str, signer, concurrency: int,
                 acks: dict[str, int]) -> list[float]:
    requests = [signer.slash_command(text=REQUEST, user_id=USER) for _ in range(concurrency)]

    async def one(signed) -> float:
        started = time.perf_counter()
        async with session.post(url, data=signed.body.encode(), headers=signed.headers) as response:
            body = await response.text()
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
        elapsed = (time.perf_counter() - started) * 1000
        kind = "named" if NAMED in body else "deferred" if DEFERRED in body else "empty"
        acks[kind] = acks.get(kind, 0) + 1
        return elapsed

    return list(await asyncio.gather(*(one(r) for r in requests)))


async def _measure(label: str, url: str, signer, *, rounds: int, concurrency: int,
                   acks: dict[str, int]) -> list[float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await _round(session, url, signer, 5, {})  # warm-up: auth.test, pools, first imports
        samples: list[float] = []
        for number in range(1, rounds + 1):
            started = time.perf_counter()
            latencies = await _round(session, url, signer, concurrency, acks)
            samples += latencies
            _say(f"[{label}] round {number}/{rounds}: {concurrency} concurrent in "
                 f"{(time.perf_counter() - started) * 1000:.0f} ms, p50 {statistics.median(latencies):.1f} ms")
    return samples


async def _run(rounds: int, concurrency: int) -> None:
    from bot.server import FrontEnds, build_web_app
    from bot.slack import build_app
    from orchestrator import Operations, Settings, build_services, router_classifier
    from tests.standins import SlackSigner, SlackStandIn

    token, secret = "xoxb-bench-token", "bench-signing-secret"
    data = Path(tempfile.mkdtemp(prefix="opsos-bench-slack-"))
    data.chmod(0o755)
    with SlackStandIn(token=token) as api:
        settings = Settings(database_url=None, redis_url=None, data_dir=data, operators=[f"slack:{USER}"],
                            slack_bot_token=token, slack_signing_secret=secret, slack_api_url=api.api_url,
                            _env_file=None)
        _say(f"starting the embedded PostgreSQL and Redis in {data} …")
        services = build_services(settings)
        signer = SlackSigner(secret, response_base=api.url)
        try:
            ops = Operations(services, router_classifier(settings.kinds_file))
            ours_app = build_web_app(ops, settings, FrontEnds(slack=build_app(ops, settings)), deliver=False)
            ours_runner, ours_url = await _serve(ours_app)
            bare_runner, bare_url = await _serve(_bare_app(secret, token, api.api_url))
            _say(f"{rounds} rounds of {concurrency} concurrent signed `/ops {REQUEST[:30]}…` requests each")
            bare = await _measure("bare bolt", bare_url, signer, rounds=rounds, concurrency=concurrency, acks={})
            acks: dict[str, int] = {}
            ours = await _measure("opsos", ours_url, signer, rounds=rounds, concurrency=concurrency, acks=acks)
            expected = rounds * concurrency + 5
            _say("waiting for the deferred replies to reach their response_url …")
            started = time.perf_counter()
            while (_intents(services) < expected or len(api.calls_to("response_url")) < acks.get("deferred", 0)) \
                    and time.perf_counter() - started < 120:
                await asyncio.sleep(0.2)
            late = len(api.calls_to("response_url"))
            drained = time.perf_counter() - started
            intents = _intents(services)
            await ours_runner.cleanup()
            await bare_runner.cleanup()
        finally:
            services.close()
    _say("")
    _say(f"{'':10} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for label, samples in (("bare bolt", bare), ("opsos", ours)):
        _say(f"{label:10} {_percentile(samples, 50):9.1f} {_percentile(samples, 99):9.1f} {max(samples):9.1f}")
    _say(f"{'ratio':10} {_percentile(ours, 50) / _percentile(bare, 50):9.1f}x"
         f" {_percentile(ours, 99) / _percentile(bare, 99):8.1f}x")
    _say(f"opsos acks naming the intent: {acks.get('named', 0)}, \"noted, confirmation follows\": "
         f"{acks.get('deferred', 0)} (their replies reached response_url: {late}, all in {drained:.1f} s more)")
    _say(f"intents written by opsos: {intents} of {rounds * concurrency + 5} (warm-up included); "
         "Slack's limit is 3,000 ms")


def _intents(services) -> int:
    with services.stores.pool.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM intents").fetchone()["n"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(_run(args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
