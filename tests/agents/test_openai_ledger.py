"""The real langchain-openai ChatOpenAI against the local OpenAI stand-in: usage lands in the ledger exactly."""
import json
from datetime import date

import pytest
from langchain_openai import ChatOpenAI

from agents import ModelTiers, OfflineTemplateDrafter, RefundParams, UsageRecorder, load_prices, with_recorder
from agents.tiers import OFFLINE_TEMPLATES
from orchestrator import Classification, Operations, budget
from tests.concurrency import at_once
from tests.orchestrator.helpers import OPERATOR, run_state, seed

MINI_IN, MINI_OUT = 0.40, 1.60  # gpt-4.1-mini, USD per million tokens, from the default price table


def openai_tiers(api) -> ModelTiers:
    model = ChatOpenAI(model="gpt-4.1-mini", base_url=api.base_url, api_key="test-key", max_retries=0)
    return ModelTiers(draft=model, reason=model, route=OfflineTemplateDrafter(templates=OFFLINE_TEMPLATES))


class Pause:
    def classify(self, text):
        return Classification(kind="account_pause", workflow="account_pause", confidence=1.0)


def test_ledger_records_exactly_the_usage_the_stand_in_reported(services, db, work, openai_api):
    """Two structured-output calls with odd token counts: agent_calls and budget_calls hold those counts and
    their price, not an estimate."""
    services.models = openai_tiers(openai_api)
    seed(services, declining=None)
    openai_api.script_text(json.dumps({"customer": "Ben Okafor"}),
                           usage={"prompt_tokens": 321, "completion_tokens": 17})
    openai_api.script_text(json.dumps({"actions": [{"type": "pause_access", "customer": "c-ben"}],
                                       "rationale": "asked to pause Ben", "cited": ["crm:c-ben"]}),
                           usage={"prompt_tokens": 1234, "completion_tokens": 56})
    Operations(services, Pause()).submit(OPERATOR, "put Ben Okafor's subscription on hold")
    work()
    assert run_state(db, 1) == "succeeded" and services.crm.get("c-ben").access == "paused"
    with db.connection() as conn:
        calls = conn.execute("SELECT step, tier, model, input_tokens, output_tokens, cost_usd::float8 AS usd"
                             " FROM agent_calls ORDER BY id").fetchall()
        ledger = conn.execute("SELECT input_tokens, output_tokens, cost_usd::float8 AS usd, state"
                              " FROM budget_calls ORDER BY id").fetchall()
    assert [(c["step"], c["tier"], c["model"], c["input_tokens"], c["output_tokens"]) for c in calls] == [
        ("understand", "draft", "gpt-4.1-mini", 321, 17), ("propose", "draft", "gpt-4.1-mini", 1234, 56)]
    expected = [(321 * MINI_IN + 17 * MINI_OUT) / 1e6, (1234 * MINI_IN + 56 * MINI_OUT) / 1e6]
    # agent_calls keeps micro-dollars (numeric(12, 6)); the ledger keeps nano-dollars.
    assert [c["usd"] for c in calls] == pytest.approx(expected, abs=1e-6)
    assert [(r["input_tokens"], r["output_tokens"], r["state"]) for r in ledger] == [
        (321, 17, "settled"), (1234, 56, "settled")]
    assert [r["usd"] for r in ledger] == pytest.approx(expected, abs=1e-12)
    assert [r["model"] for r in openai_api.requests] == ["gpt-4.1-mini", "gpt-4.1-mini"]


def test_usage_recorder_reads_a_tool_call_answer(openai_api):
    """Structured output by function calling: the callback sees the tool-call response's usage."""
    recorder = UsageRecorder()
    model = with_recorder(ChatOpenAI(model="gpt-4.1-mini", base_url=openai_api.base_url, api_key="test-key"),
                          recorder)
    openai_api.script_tool_call("RefundParams", {"customer": "Ana Souza", "amount_cents": 2000},
                                usage={"prompt_tokens": 77, "completion_tokens": 9})
    answer = model.with_structured_output(RefundParams, method="function_calling").invoke("refund Ana $20")
    assert answer == RefundParams(customer="Ana Souza", amount_cents=2000)
    assert (recorder.input_tokens, recorder.output_tokens) == (77, 9)
    assert recorder.cost(load_prices(None)) == pytest.approx((77 * MINI_IN + 9 * MINI_OUT) / 1e6)
    assert openai_api.requests[0]["tools"][0]["function"]["name"] == "RefundParams"


def test_twenty_concurrent_model_calls_never_spend_past_the_cap(db, openai_api):
    """20 threads each reserve, call ChatOpenAI, settle what it reported: 6 calls fit a $1.00 cap at $0.15, the
    other 14 never reach the model, and the settled spend is what the stand-in reported."""
    caps = budget.Caps(daily=1.0, monthly=None, tier_daily={}, tier_monthly={})
    prices, today = load_prices(None), date(2026, 3, 14)
    for _ in range(20):
        # 375,000 prompt tokens at $0.40 per million: $0.15, the reservation exactly.
        openai_api.script_text("ok", usage={"prompt_tokens": 375_000, "completion_tokens": 0})
    model = ChatOpenAI(model="gpt-4.1-mini", base_url=openai_api.base_url, api_key="test-key", max_retries=0)
    def call() -> str:
        with db.connection() as conn:
            reservation = budget.reserve(conn, run_id=None, step="s", tier="draft", model="gpt-4.1-mini",
                                         estimate_usd=0.15, today=today, caps=caps)
        recorder = UsageRecorder()
        with_recorder(model, recorder).invoke("hello")
        with db.connection() as conn, conn.transaction():
            budget.settle(conn, reservation, model="gpt-4.1-mini", input_tokens=recorder.input_tokens,
                          output_tokens=recorder.output_tokens, cost_usd=recorder.cost(prices), caps=caps)
        return "called"

    outcomes = at_once([call] * 20, expect=(budget.CapReached,))
    assert outcomes.count("called") == 6 and sum(isinstance(o, budget.CapReached) for o in outcomes) == 14
    assert len(openai_api.requests) == 6
    with db.connection() as conn:
        spent = conn.execute("SELECT spent_usd::float8 AS s, reserved_usd::float8 AS r FROM budget_periods"
                             " WHERE scope = 'all' AND period = 'day'").fetchone()
        tokens = conn.execute("SELECT sum(input_tokens) AS n FROM budget_calls WHERE state = 'settled'").fetchone()
    assert spent["s"] == pytest.approx(0.90) and spent["s"] <= 1.0 and spent["r"] == 0
    assert tokens["n"] == 6 * 375_000


def test_every_model_call_caps_its_output_at_the_allowance_its_reservation_assumed(services, db, work, openai_api):
    """The reservation is priced for `model_max_output_tokens` of output; each request ChatOpenAI sends asks for
    at most that many (it sends the cap as `max_completion_tokens`, the field OpenAI's API reads), so a model
    cannot write, and bill, more than was reserved. Before the fix the request carried no cap at all."""
    services.settings = services.settings.model_copy(update={"model_max_output_tokens": 333})
    services.models = openai_tiers(openai_api)
    seed(services, declining=None)
    openai_api.script_text(json.dumps({"customer": "Ben Okafor"}), usage={"prompt_tokens": 400, "completion_tokens": 9})
    openai_api.script_text(json.dumps({"actions": [{"type": "pause_access", "customer": "c-ben"}],
                                       "rationale": "asked to pause Ben", "cited": ["crm:c-ben"]}),
                           usage={"prompt_tokens": 900, "completion_tokens": 30})
    Operations(services, Pause()).submit(OPERATOR, "put Ben Okafor's subscription on hold")
    work()
    assert run_state(db, 1) == "succeeded"
    with db.connection() as conn:
        reserved = [r["usd"] for r in conn.execute("SELECT estimate_usd::float8 AS usd FROM budget_calls ORDER BY id")]
    assert len(openai_api.requests) == 2 == len(reserved)
    for body, estimate in zip(openai_api.requests, reserved, strict=True):
        assert body["max_completion_tokens"] == 333 and "max_tokens" not in body
        # What the reservation held: the prompt by rule of thumb plus exactly this output allowance.
        prompt_tokens = estimate * 1e6 - 333 * MINI_OUT
        assert prompt_tokens / MINI_IN == pytest.approx(round(prompt_tokens / MINI_IN), abs=1e-3)
    # The tier's own model is untouched: the cap is set on the copy each call makes.
    assert services.models.draft.max_tokens is None


def test_the_summariser_caps_its_output_at_the_allowance_it_reserved(services, db, openai_api):
    """Nightly summaries go through the same ledger: their request carries the reserved output allowance too."""
    from datetime import UTC, datetime

    from orchestrator import upkeep

    services.settings = services.settings.model_copy(update={"model_max_output_tokens": 222})
    services.models = openai_tiers(openai_api)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    services.clock = lambda: now
    for n in (2, 3):
        services.memory.remember(f"Ana asked about invoice {n}.", kind="customer_interaction", subject="Ana Souza",
                                 at=datetime(2026, 1, n, tzinfo=UTC))
    openai_api.script_text(json.dumps({"summary": "Ana asked about two invoices."}),
                           usage={"prompt_tokens": 120, "completion_tokens": 8})
    [summary] = upkeep.summarise_interactions(services, now)
    assert summary.subject == "Ana Souza"
    assert [body["max_completion_tokens"] for body in openai_api.requests] == [222]
