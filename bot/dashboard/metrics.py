"""`/metrics`: a prometheus-client Collector that reads the orchestrator's snapshot at scrape time."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from orchestrator import Operations, views


class OpsCollector(Collector):
    """Reads the database and Redis on every scrape: several web processes report the same numbers."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def describe(self) -> list[Metric]:
        # Nothing to describe up front: registering must not touch the database.
        return []

    def collect(self) -> Iterator[Metric]:
        with self.ops.pool.connection() as conn:
            snap = views.metrics.snapshot(conn, self.ops.services.stores.redis)
        intents = CounterMetricFamily("opsos_intents", "Intents created, by kind", labels=["kind"])
        for kind, n in snap.intents.items():
            intents.add_metric([kind], n)
        yield intents
        runs = GaugeMetricFamily("opsos_runs", "Runs by workflow and state", labels=["workflow", "state"])
        for (workflow, state), n in snap.runs.items():
            runs.add_metric([workflow, state], n)
        yield runs
        durations = HistogramMetricFamily("opsos_run_duration_seconds", "From queued to finished, finished runs",
                                          labels=["workflow"])
        for workflow, h in snap.durations.items():
            buckets = [(_le(le), n) for le, n in h.buckets] + [("+Inf", h.count)]
            durations.add_metric([workflow], buckets, sum_value=h.total)
        yield durations
        depth = GaugeMetricFamily("opsos_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        failed = GaugeMetricFamily("opsos_queue_failed_jobs", "Jobs in each queue's failed registry",
                                   labels=["queue"])
        for name, n in snap.queues.items():
            depth.add_metric([name], n)
            failed.add_metric([name], snap.failed_jobs.get(name, 0))
        yield depth
        yield failed
        yield GaugeMetricFamily("opsos_redis_up", "1 when Redis answered this scrape", value=int(snap.redis_up))
        yield GaugeMetricFamily("opsos_pending_approvals", "Approvals waiting for the operator",
                                value=snap.pending_approvals)
        spend = CounterMetricFamily("opsos_model_spend_usd", "Model spend in USD, by tier", labels=["tier"])
        tokens = CounterMetricFamily("opsos_model_tokens", "Model tokens, by tier", labels=["tier"])
        for tier, usd in snap.spend_usd.items():
            spend.add_metric([tier], usd)
            tokens.add_metric([tier], snap.tokens.get(tier, 0))
        yield spend
        yield tokens
        errors = CounterMetricFamily("opsos_connector_errors", "Failed or repeated outside actions, by connector",
                                     labels=["connector"])
        for connector, n in snap.connector_errors.items():
            errors.add_metric([connector], n)
        yield errors
        retries = CounterMetricFamily("opsos_delivery_retries", "Outbox delivery attempts beyond the first",
                                      labels=["channel"])
        pending = GaugeMetricFamily("opsos_outbox_pending", "Messages not yet delivered", labels=["channel"])
        dead = GaugeMetricFamily("opsos_outbox_dead", "Messages given up on after too many failed attempts",
                                 labels=["channel"])
        for channel, n in snap.delivery_retries.items():
            retries.add_metric([channel], n)
            pending.add_metric([channel], snap.outbox_pending.get(channel, 0))
            dead.add_metric([channel], snap.outbox_dead.get(channel, 0))
        yield retries
        yield pending
        yield dead


def _le(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) else f"{bound:.1f}"


def registry(ops: Operations) -> CollectorRegistry:
    """A registry of its own, so two apps in one process (tests) do not register the collector twice."""
    found = CollectorRegistry(auto_describe=False)
    found.register(OpsCollector(ops))
    return found
