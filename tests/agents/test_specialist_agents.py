"""Specialist agents and parameter extraction on the offline tier: proposals validate, nothing is made up."""
import pytest

from agents import (
    AccountParams,
    BookkeepingParams,
    BookkeepingProposal,
    ContentProposal,
    FulfillmentProposal,
    OutreachProposal,
    PriceTable,
    RefundParams,
    bookkeeping_agent,
    build_tiers,
    context_block,
    extraction_agent,
    fulfillment_agent,
    load_prices,
    missing,
    outreach_agent,
    post_agent,
)

CUSTOMER = {"id": "c-ana", "name": "Ana Souza", "email": "ana@example.com", "plan": "monthly", "status": "active",
            "access": "active", "notes": "asked about annual billing"}
CASES = [
    (post_agent, ContentProposal, {"topic": "pricing for solo founders", "channel": "newsletter",
                                   "memories": [{"id": "m-7", "text": "annual plans sell best in January"}]}),
    (outreach_agent, OutreachProposal, {"recipient": CUSTOMER, "purpose": "offer the annual plan"}),
    (bookkeeping_agent, BookkeepingProposal, {"period": "2026-03", "transactions": [
        {"id": 1, "amount_cents": -2000, "counterparty": "Hetzner", "memo": "server", "category": None},
        {"id": 2, "amount_cents": 1200, "counterparty": "c-ana", "memo": "charge sub:1", "category": None}]}),
    (fulfillment_agent, FulfillmentProposal, {"operation": "refund", "customer": CUSTOMER,
                                              "charges": [{"key": "sub:1", "amount_cents": 1200}]}),
]


@pytest.mark.parametrize(("agent", "schema", "context"), CASES, ids=[c[1].__name__ for c in CASES])
def test_every_specialists_offline_proposal_validates_and_cites_its_records(agent, schema, context):
    result = agent.invoke(build_tiers().draft, {"goal": "g", "context": context_block(context)})
    assert isinstance(result.output, schema) and result.output.actions and result.output.rationale
    assert result.output.cited and result.input_tokens > 0
    schema.model_validate(result.output.model_dump(mode="json"))


def test_the_fulfillment_proposal_refunds_the_charge_from_the_context():
    context = {"operation": "refund", "customer": CUSTOMER, "charges": [{"key": "sub:1", "amount_cents": 1200}]}
    result = fulfillment_agent.invoke(build_tiers().draft, {"goal": "g", "context": context_block(context)})
    [action] = result.output.actions
    assert (action.type, action.customer, action.charge_key, action.amount_cents) == ("refund", "c-ana", "sub:1", 1200)


@pytest.mark.parametrize(("schema", "request_text", "expected"), [
    (AccountParams, "put Maria's subscription on hold", {"customer": "Maria"}),
    (AccountParams, "suspend the account for john@example.com", {"customer": "john@example.com"}),
    (RefundParams, "issue a partial refund of $20 to Maria", {"customer": "Maria", "amount_cents": 2000}),
    (BookkeepingParams, "prepare the bookkeeping summary for March", {"period": "2026-03"}),
    (BookkeepingParams, "what was our profit last month", {"period": "2026-04"}),
])
def test_offline_extraction_reads_parameters_from_the_request(schema, request_text, expected):
    agent = extraction_agent("k", schema)
    output = agent.invoke(build_tiers().draft, {"context": context_block({"request": request_text,
                                                                          "today": "2026-05-10"})}).output
    assert {k: v for k, v in output.model_dump().items() if v is not None} == expected
    assert missing(output, request_text) == []


def test_a_missing_parameter_is_reported_missing_not_filled_in():
    output = extraction_agent("k", AccountParams).invoke(
        build_tiers().draft, {"context": context_block({"request": "pause a customer's access"})}).output
    assert output.customer is None and missing(output, "pause a customer's access") == ["customer"]


def test_a_name_the_request_never_said_counts_as_missing():
    """A model that invents a customer is caught: the value must appear in the request's own words."""
    assert missing(AccountParams(customer="Ana Souza"), "pause the customer who asked for a break") == ["customer"]


def test_prices_match_dated_model_names_and_load_from_a_file(tmp_path):
    table = PriceTable({"gpt-4.1": (2.0, 8.0), "gpt-4.1-mini": (0.4, 1.6)})
    assert table.price("gpt-4.1-mini-2025-04-14") == (0.4, 1.6)
    assert table.price("openai:gpt-4.1") == (2.0, 8.0)
    assert table.cost("gpt-4.1-mini", 1_000_000, 1_000_000) == pytest.approx(2.0)
    path = tmp_path / "prices.toml"
    path.write_text('[prices]\n"my-model" = [1.0, 2.0]\n')
    assert load_prices(path).price("my-model") == (1.0, 2.0)
    assert load_prices(path).price("offline-template-drafter") == (0.0, 0.0)
