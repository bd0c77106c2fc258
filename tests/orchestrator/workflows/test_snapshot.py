"""The context snapshot an agent gets: its conversation and policies reach the model, the budget cuts the oldest
messages, a Redis outage costs a rebuild, and a re-run of a step within the TTL reuses its snapshot."""
import json
import socket
from datetime import timedelta

from langchain_openai import ChatOpenAI
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agents import ModelTiers, OfflineTemplateDrafter, fulfillment_agent
from agents.base import render
from agents.tiers import OFFLINE_TEMPLATES
from memory import ContextCache
from orchestrator import Classification, Message, MessageKind, Operations, intents, outbox, runs
from orchestrator.intents import Constraints
from orchestrator.keys import step_key
from orchestrator.workflows.context import StepContext
from orchestrator.workflows.snapshot import Gathered
from tests.orchestrator.helpers import OPERATOR, count, run_state, seed

EARLIER = "Ben wrote that he travels until June, keep that in mind"
REPLY = "Noted: Ben travels until June."
ELSEWHERE = "Chloe owes us an invoice from the other thread"
POLICY = "Never pause an account without emailing the customer first."


class Pause:
    def classify(self, text):
        return Classification(kind="account_pause", workflow="account_pause", confidence=1.0)


def said(services, text: str, *, conversation: str = OPERATOR.conversation, reply: str | None = None) -> None:
    """An earlier request in a conversation (no run), and what opsos answered, each in its own transaction."""
    with services.stores.pool.connection() as conn, conn.transaction():
        intent = intents.create(conn, requested_by=OPERATOR.identity, channel=OPERATOR.channel,
                                conversation=conversation, request=text, kind="account_pause", params={},
                                constraints=Constraints(budget_usd=1.0, deadline=services.now() + timedelta(days=1)),
                                dedupe_key=None, now=services.now())
    if reply is not None:
        with services.stores.pool.connection() as conn, conn.transaction():
            outbox.post(conn, channel=OPERATOR.channel, conversation=conversation, intent_id=intent.id,
                        message=Message(kind=MessageKind.NOTICE, title=reply))


def openai_model(services, api) -> None:
    model = ChatOpenAI(model="gpt-4.1-mini", base_url=api.base_url, api_key="test-key", max_retries=0)
    services.models = ModelTiers(draft=model, reason=model, route=OfflineTemplateDrafter(templates=OFFLINE_TEMPLATES))
    api.script_text(json.dumps({"customer": "Ben Okafor"}))
    api.script_text(json.dumps({"actions": [{"type": "pause_access", "customer": "c-ben"}],
                                "rationale": "asked to pause Ben", "cited": ["crm:c-ben"]}))


def pause_ben(services, work) -> None:
    Operations(services, Pause()).submit(OPERATOR, "put Ben Okafor's subscription on hold")
    work()


def step_context(services, step: str, *, run_id: int = 1) -> StepContext:
    """The context the engine would give `step` of the run: what a worker re-running it gets."""
    with services.stores.pool.connection() as conn:
        run = runs.get(conn, run_id)
        intent = intents.get(conn, run.intent_id)
    return StepContext(services=services, run=run, intent=intent, step=step, results={})


def unreachable_redis() -> Redis:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # No retries: the client would back off for seconds per command before giving up on a closed port.
    return Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))


def test_every_agent_call_carries_the_earlier_message_of_its_conversation_and_not_another(
        services, db, work, openai_api):
    """Both model calls of the run (extraction, then the fulfillment agent) see the operator's earlier message,
    opsos's reply and the operator's policy; the message of another conversation never reaches the model."""
    seed(services, declining=None)
    said(services, EARLIER, reply=REPLY)
    said(services, ELSEWHERE, conversation="console:other")
    services.memory.remember(POLICY, kind="policy", subject="operator")
    openai_model(services, openai_api)
    pause_ben(services, work)
    assert run_state(db, 1) == "succeeded" and services.crm.get("c-ben").access == "paused"
    assert len(openai_api.requests) == 2
    for request in openai_api.requests:
        sent = json.dumps(request["messages"])
        assert EARLIER in sent and REPLY in sent and POLICY in sent
        assert ELSEWHERE not in sent
        assert "needs_approval" in sent and "refund" in sent


def test_the_token_budget_drops_the_oldest_messages_first(services, db):
    """Ten earlier messages, a budget that holds some: the newest are kept in order, the oldest counted dropped."""
    texts = [f"request number {i}: " + "please look at this " * 6 for i in range(10)]
    for text in texts:
        said(services, text)
    services.settings.context_token_budget = 400
    Operations(services, Pause()).submit(OPERATOR, "put Ben Okafor's subscription on hold")
    snapshot = step_context(services, "understand").snapshot().snapshot
    dropped = snapshot.dropped_messages
    assert 0 < dropped < len(texts)
    assert [m["text"] for m in snapshot.messages] == texts[dropped:]
    assert snapshot.tokens <= 400
    assert render(snapshot)["omitted"] == {"messages": dropped, "memories": 0}  # the agent is told it was cut


def test_a_redis_outage_costs_a_rebuild_not_the_run(services, db, work, openai_api):
    """With the snapshot cache unreachable, each step builds its snapshot from PostgreSQL and the run goes on."""
    seed(services, declining=None)
    said(services, EARLIER, reply=REPLY)
    services.context = ContextCache(unreachable_redis(), clock=lambda: services.now().timestamp())
    openai_model(services, openai_api)
    pause_ben(services, work)
    assert run_state(db, 1) == "succeeded"
    assert all(EARLIER in json.dumps(r["messages"]) for r in openai_api.requests)
    builds: list[int] = []
    ctx = step_context(services, "propose")
    for _ in range(2):
        ctx.snapshot(gather=lambda: Gathered(facts={"built": builds.append(1) or len(builds)}))
    assert len(builds) == 2  # nothing cached: every read rebuilt it


def test_a_rerun_of_a_step_within_the_ttl_reuses_its_snapshot_and_its_model_call(services, db, redis):
    """A re-run of the same step (a worker died after the call) reads the cached snapshot, so the prompt is the
    same and the stored call is reused, even after memory changed; past the TTL (injected clock) it is rebuilt."""
    seed(services, declining=None)
    start = services.now()
    services.clock = lambda: start
    Operations(services, Pause()).submit(OPERATOR, "put Ben Okafor's subscription on hold")
    builds: list[str] = []
    customer = {"id": "c-ben", "name": "Ben Okafor", "email": "ben@example.com", "plan": "monthly",
                "status": "active", "access": "active"}

    def gather() -> Gathered:
        builds.append("built")
        return Gathered(facts={"operation": "pause", "customer": customer}, scope={"customers": ["c-ben"]})

    first = step_context(services, "propose").snapshot(gather=gather)
    step_context(services, "propose").agent(fulfillment_agent, first)
    assert redis.exists("opsos:ctx:" + step_key(1, "propose"))
    services.memory.remember(POLICY, kind="policy", subject="operator")

    rerun = step_context(services, "propose")
    again = rerun.snapshot(gather=gather)
    assert again == first and builds == ["built"] and again.scope == {"customers": ["c-ben"]}
    rerun.agent(fulfillment_agent, again)
    assert count(db, "agent_calls") == 1  # same prompt: the stored call answered

    step_context(services, "understand").snapshot(gather=gather)
    assert len(builds) == 2  # another step of the run has a snapshot of its own

    services.clock = lambda: start + timedelta(seconds=services.settings.context_ttl_seconds + 1)
    rebuilt = step_context(services, "propose").snapshot(gather=gather)
    assert len(builds) == 3 and [r.text for r in rebuilt.snapshot.policies.rules] == [POLICY]


def test_a_careful_intent_tells_the_agent_that_every_outside_action_waits_for_approval() -> None:
    """Proves the snapshot's approval list follows the intent's risk, as `policy.needs_approval` does: before, a
    careful intent's agent was told charges and access changes run without asking, and they then waited."""
    from orchestrator.policy import Policy, Risk
    from orchestrator.workflows.snapshot import needs_approval

    policy = Policy(operators=frozenset({"console:operator"}))
    assert needs_approval(policy, Risk.NORMAL) == ["cancel_subscription", "refund", "send_email"]
    assert needs_approval(policy, Risk.HIGH) == ["cancel_subscription", "categorise", "charge", "pause_access",
                                                 "pause_collection", "post_content", "provision_account", "refund",
                                                 "resume_access", "resume_collection", "send_email", "tag_contact"]
