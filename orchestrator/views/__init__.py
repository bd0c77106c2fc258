"""Read models: what the operator reads (reports, the digest, the dashboard's overview, /metrics, charts).

Read-only: nothing here writes a row (a test runs each in a READ ONLY transaction).
"""
from orchestrator.views import charts, digest, metrics, overview, reports

__all__ = ["charts", "digest", "metrics", "overview", "reports"]
