"""A model call that fails after the provider billed it is settled at what it reported, not given back at $0."""
from __future__ import annotations

import pytest

from orchestrator import Operations
from tests.agents.test_openai_ledger import Pause, openai_tiers
from tests.orchestrator.helpers import OPERATOR, seed


def test_an_answer_that_does_not_parse_still_costs_what_it_reported(services, db, work, openai_api):
    """Proves review defect 10's first leak is gone: the reply came back (money spent) but was no valid parameters;
    before, the reservation was released and the spend vanished from every cap. langchain-openai parses the reply
    as it reads it and drops its usage with the error, so what is known is the estimate held for the call."""
    services.models = openai_tiers(openai_api)
    seed(services, declining=None)
    openai_api.script_text("this is not JSON at all", usage={"prompt_tokens": 400, "completion_tokens": 30})
    Operations(services, Pause()).submit(OPERATOR, "put Ben Okafor's subscription on hold")
    work()
    with db.connection() as conn:
        rows = conn.execute("SELECT state, input_tokens, output_tokens, cost_usd::float8 AS usd FROM budget_calls"
                            " ORDER BY id").fetchall()
        spent = conn.execute("SELECT spent_usd::float8 AS s FROM budget_periods WHERE scope = 'all' AND period = 'day'"
                             ).fetchone()["s"]
    with db.connection() as conn:
        estimate = conn.execute("SELECT estimate_usd::float8 AS e FROM budget_calls ORDER BY id").fetchone()["e"]
    assert [r["state"] for r in rows] == ["settled"]
    assert rows[0]["usd"] == pytest.approx(estimate, abs=1e-12) and estimate > 0
    assert spent == pytest.approx(estimate, abs=1e-12)  # the day's cap sees it


def test_a_call_that_never_reached_the_model_gives_its_hold_back(services, db, work, openai_api):
    """The other side: the provider refused before any work (HTTP 500 after no retries): nothing was billed."""
    services.models = openai_tiers(openai_api)
    seed(services, declining=None)
    openai_api.fail_next_requests(1)
    Operations(services, Pause()).submit(OPERATOR, "put Ben Okafor's subscription on hold")
    work()
    with db.connection() as conn:
        rows = conn.execute("SELECT state, cost_usd::float8 AS usd FROM budget_calls ORDER BY id").fetchall()
    assert [(r["state"], r["usd"]) for r in rows][:1] == [("released", 0.0)]
