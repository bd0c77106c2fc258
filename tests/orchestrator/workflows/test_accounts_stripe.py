"""Account pause and resume with payments on Stripe (the stand-in, through the `stripe` library): the customer's
access in the CRM and their subscription's collection at Stripe go together; the agent may name only the
subscriptions the orchestrator looked up; on the sandbox a subscription action is refused as needing Stripe."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from agents.offline import OfflineTemplateDrafter
from agents.tiers import OFFLINE_TEMPLATES, ModelTiers
from orchestrator import Classification, Decision, Operations, contacts, intents, runs
from orchestrator.policy import Effect, Policy
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.proposals import undo_actions
from tests.orchestrator.helpers import OPERATOR, pay_through_stripe, pending_approval, run_state, seed

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class OneKind:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def classify(self, text: str) -> Classification:
        return Classification(kind=self.kind, workflow=self.kind, confidence=1.0)


def submit(services, kind: str, text: str) -> Operations:
    ops = Operations(services, OneKind(kind))
    ops.submit(OPERATOR, text)
    return ops


def step_result(db, name: str, run_id: int = 1) -> dict:
    with db.connection() as conn:
        return conn.execute("SELECT result FROM steps WHERE run_id = %s AND name = %s", (run_id, name)).fetchone()[
            "result"]


def on_stripe(services, stripe_api):
    services.clock = lambda: NOW
    pay_through_stripe(services, stripe_api)
    stripe_api.add_customer("cus_ana", email="ana@example.com", name="Ana Souza")
    stripe_api.add_customer("cus_ben", email="ben@example.com", name="Ben Ito")
    stripe_api.add_subscription("sub_ana", customer="cus_ana", amount_cents=2900)
    stripe_api.add_subscription("sub_ana_old", customer="cus_ana", amount_cents=1200, status="canceled")
    stripe_api.add_subscription("sub_ben", customer="cus_ben", amount_cents=2000)
    contacts.sync_stripe(services, actor="console:operator")
    return services.crm.by_email("ana@example.com")


def test_pausing_a_stripe_customer_pauses_their_access_and_billing_and_the_undo_resumes_both(services, stripe_api,
                                                                                            db, work):
    """Proves account_pause on Stripe pauses the collection of Ana's live subscription (not her cancelled one, not
    Ben's), says so in the report, and that its compensation resumes billing as it restores access."""
    ana = on_stripe(services, stripe_api)
    submit(services, "account_pause", "put Ana Souza's subscription on hold")
    work()
    assert run_state(db, 1) == "succeeded"
    assert services.crm.get(ana.id).access == "paused"
    assert stripe_api.subscriptions["sub_ana"]["pause_collection"] == {"behavior": "void", "resumes_at": None}
    assert stripe_api.subscriptions["sub_ben"]["pause_collection"] is None
    assert len(stripe_api.calls_to("subscriptions.update")) == 1
    summary = step_result(db, "execute")
    assert [d["line"] for d in summary["done"]] == [f"pause {ana.id}'s access",
                                                    f"pause billing of {ana.id}'s Stripe subscription sub_ana"]
    assert summary["done"][1]["outcome"] == "billing paused"
    with db.connection() as conn:
        run, intent = runs.get(conn, 1), intents.get(conn, 1)
    ctx = StepContext(services=services, run=run, intent=intent, step="execute", results={})
    undone = undo_actions(ctx, summary)["undone"]
    assert undone[1] == "resumed collection of sub_ana"
    assert stripe_api.subscriptions["sub_ana"]["pause_collection"] is None
    assert services.crm.get(ana.id).access == "active"


def test_a_pause_where_policy_asks_names_the_billing_in_the_approval(services, stripe_api, db, work):
    ana = on_stripe(services, stripe_api)
    services.policy = Policy(operators=services.policy.operators,
                             approval_required=services.policy.approval_required | {Effect.COLLECTION})
    ops = submit(services, "account_pause", "put Ana Souza's subscription on hold")
    work()
    assert run_state(db, 1) == "awaiting_approval"
    assert stripe_api.subscriptions["sub_ana"]["pause_collection"] is None
    with db.connection() as conn:
        ask = conn.execute("SELECT message FROM outbox WHERE approval_id IS NOT NULL").fetchone()["message"]
    assert f"pause billing of {ana.id}'s Stripe subscription sub_ana" in json.dumps(ask, ensure_ascii=False)
    ops.decide(OPERATOR, pending_approval(db, 1), Decision.APPROVED)
    work()
    assert run_state(db, 1) == "succeeded"
    assert stripe_api.subscriptions["sub_ana"]["pause_collection"] is not None


def test_resuming_a_stripe_customer_resumes_their_paused_billing(services, stripe_api, db, work):
    ana = on_stripe(services, stripe_api)
    services.crm.upsert([ana.model_copy(update={"access": "paused"})])
    stripe_api.subscriptions["sub_ana"]["pause_collection"] = {"behavior": "void", "resumes_at": None}
    submit(services, "account_resume", "restore access for ana@example.com now that she paid")
    work()
    assert run_state(db, 1) == "succeeded"
    assert services.crm.get(ana.id).access == "active"
    assert stripe_api.subscriptions["sub_ana"]["pause_collection"] is None
    assert step_result(db, "execute")["done"][1]["outcome"] == "billing on"


def wishing(extra: list[dict]):
    """A model that proposes the offline tier's actions and `extra` (each naming the customer it was given)."""
    def template(context: dict) -> dict:
        proposal = OFFLINE_TEMPLATES["FulfillmentProposal"](context)
        cid = context["customer"]["id"]
        proposal["actions"] += [{**action, "customer": action.get("customer", cid)} for action in extra]
        return proposal

    model = OfflineTemplateDrafter(templates={**OFFLINE_TEMPLATES, "FulfillmentProposal": template})
    return ModelTiers(draft=model, reason=model, route=OfflineTemplateDrafter(templates=OFFLINE_TEMPLATES))


def test_a_proposal_naming_another_customers_subscription_is_refused(services, stripe_api, db, work):
    """Proves the scope holds the customer's own subscriptions: Ben's, proposed for Ana, is left out in words and
    never sent to Stripe; Ana's own goes through."""
    on_stripe(services, stripe_api)
    services.models = wishing([{"type": "pause_collection", "subscription": "sub_ben"}])
    submit(services, "account_pause", "put Ana Souza's subscription on hold")
    work()
    assert run_state(db, 1) == "succeeded"
    assert stripe_api.subscriptions["sub_ben"]["pause_collection"] is None
    assert stripe_api.subscriptions["sub_ana"]["pause_collection"] is not None
    [refused] = step_result(db, "execute")["refused"]
    assert refused.endswith("sub_ben: not a Stripe subscription of " + services.crm.by_email("ana@example.com").id)


def test_a_subscription_action_on_the_sandbox_is_refused_as_needing_stripe(services, db, work):
    """Proves the sandbox refusal is reached: a proposal of a subscription pause validates (it is an action agents
    may propose) and is left out with the words that say Stripe is needed; the access pause goes through."""
    seed(services, declining=None)
    services.models = wishing([{"type": "pause_collection", "subscription": "sub_x"}])
    submit(services, "account_pause", "put Ben Okafor's subscription on hold")
    work()
    assert run_state(db, 1) == "succeeded"
    assert services.crm.get("c-ben").access == "paused"
    [refused] = step_result(db, "execute")["refused"]
    assert "subscriptions are paused, resumed and cancelled at Stripe" in refused
