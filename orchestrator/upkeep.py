"""Memory upkeep: reclaim memories past retention and compact old interactions into summaries, each audited."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from langchain_core.language_models import BaseChatModel
from psycopg import Connection

from agents import AgentResult, InteractionSummary, model_name, summarise, summary_prompt_chars, with_output_cap
from memory import MemoryRecord, Reclaimed
from orchestrator import audit, budget
from orchestrator.budget.prices import price_table
from orchestrator.services import Services

log = structlog.get_logger(__name__)

ACTOR = "upkeep"
SUMMARY_TIER = "draft"
# Interactions older than this are compacted into a summary; the originals stay until retention ends.
SUMMARISE_AFTER_DAYS = 90


def reclaim_memories(services: Services, now: datetime, *, conn: Connection | None = None) -> list[Reclaimed]:
    """Remove memories past retention that nothing references, with one `memory.reclaimed` event each.

    The removal and its audit events are one transaction (the caller's `conn` if given, else a new
    one): the memory rows are deleted, then the events appended, then both commit, or neither does
    (a crash in between rolls the deletion back). A memory being cited meanwhile is skipped, not
    removed (reclaim locks FOR UPDATE SKIP LOCKED). A second run finds nothing left: idempotent.
    """
    if conn is None:
        with services.stores.pool.connection() as own, own.transaction():
            return _reclaim(services, own, now)
    return _reclaim(services, conn, now)


def _reclaim(services: Services, conn: Connection, now: datetime) -> list[Reclaimed]:
    removed = services.memory.reclaim(now, conn=conn)
    for r in removed:
        # Reclaimed carries ids, subject, kind and dates, never the text: the audit log cannot leak it.
        audit.append(conn, actor=ACTOR, kind="memory.reclaimed", payload=r.model_dump(mode="json"), at=now)
    if removed:
        log.info("memory.reclaimed", count=len(removed), now=now.isoformat())
    return removed


def summarise_interactions(
    services: Services, now: datetime, *, older_than_days: int = SUMMARISE_AFTER_DAYS
) -> list[MemoryRecord]:
    """Compact each subject's interaction memories older than `older_than_days` into one summary memory.

    The summary is written by the draft tier (the offline tier's is deterministic), linked to its
    sources, which are kept; one `memory.summarised` event per subject. A source already summarised
    is not summarised again, so a second run does nothing. Must not be called while the caller's
    transaction holds the audit chain's lock (each event here commits in its own transaction).
    A subject whose summary the model fails to produce is logged and left for the next run.
    Each call is reserved and settled in the budget ledger like an agent's: when the draft tier's
    caps have no room left, summarising stops and the rest waits for the next run.
    """
    older_than = now - timedelta(days=older_than_days)
    model = services.models.tier(SUMMARY_TIER)
    done: list[MemoryRecord] = []
    for subject in services.memory.subjects_to_summarise(older_than):
        calls: list[AgentResult[InteractionSummary]] = []
        try:
            summary = services.memory.summarise(
                subject, older_than=older_than, summariser=_budgeted_summariser(services, model, subject, calls),
                provenance={"source": "upkeep"},
            )
        except budget.CapReached as capped:
            log.warning("memory.summarise_deferred", subject=subject, reason="budget",
                        scope=capped.standing.period.scope, period=capped.standing.period.period)
            break
        except ValueError as error:
            # A model answer that does not fit the schema skips this subject only: one bad answer
            # must not hold up the other subjects, nor the reclamation that follows in the slot.
            # Its sources stay unsummarised, so the next run tries again.
            log.warning("memory.summarise_failed", subject=subject, error=str(error))
            continue
        if summary is None:
            continue
        # The summary committed in its own transaction; this event follows in the next. A crash in
        # between loses only the event: the summary itself still records its sources (provenance
        # `summarises` and the `summarises` links), and nothing is lost or done twice.
        with services.stores.pool.connection() as conn, conn.transaction():
            audit.append(conn, actor=ACTOR, kind="memory.summarised", at=now, payload={
                "memory_id": summary.id, "subject": subject, "sources": summary.provenance.get("summarises", []),
                "older_than": older_than.isoformat(), "tier": SUMMARY_TIER,
                "model": calls[-1].model if calls else None,
                "input_tokens": sum(c.input_tokens for c in calls),
                "output_tokens": sum(c.output_tokens for c in calls),
                "cost_usd": _cost(services, calls),
            })
        done.append(summary)
    if done:
        log.info("memory.summarised", subjects=len(done), older_than=older_than.isoformat())
    return done


def _cost(services: Services, calls: list[AgentResult[InteractionSummary]]) -> float:
    prices = price_table(services.settings.model_prices_path)
    return sum(prices.cost(c.model, c.input_tokens, c.output_tokens) for c in calls)


def _budgeted_summariser(services: Services, model: BaseChatModel, subject: str,
                         calls: list[AgentResult[InteractionSummary]]) -> Callable[[list[str]], str]:
    """The summariser long-term memory calls: reserve the estimate, call the model, settle what it cost.

    Raises budget.CapReached, before any call, when a cap of the summary tier has no room.
    """
    settings, pool = services.settings, services.stores.pool
    caps, prices = budget.Caps.from_settings(settings), price_table(settings.model_prices_path)
    name = model_name(model)

    # Reserved for, and capped at, the same output allowance: the reservation bounds what the call can bill.
    max_output = settings.model_max_output_tokens
    capped = with_output_cap(model, max_output)

    def run(texts: list[str]) -> str:
        estimate = prices.estimate(name, summary_prompt_chars(subject, texts), max_output)
        with pool.connection() as conn:
            held = budget.reserve(conn, run_id=None, step=ACTOR, tier=SUMMARY_TIER, model=name, estimate_usd=estimate,
                                  today=budget.local_today(services.now(), settings), caps=caps)
        try:
            result = summarise(capped, subject=subject, texts=texts)
        except Exception:
            with pool.connection() as conn, conn.transaction():
                budget.release(conn, held, caps=caps)
            raise
        calls.append(result)
        with pool.connection() as conn, conn.transaction():
            budget.settle(conn, held, model=result.model, input_tokens=result.input_tokens,
                          output_tokens=result.output_tokens, caps=caps,
                          cost_usd=prices.cost(result.model, result.input_tokens, result.output_tokens))
        return result.output.summary

    return run
