"""The prompt-injection guard is said once, in the shared prompt: every agent's system prompt has it exactly once."""
from pathlib import Path

import pytest

import agents
from agents import (
    AccountParams,
    BookkeepingParams,
    ContentParams,
    OutreachParams,
    RefundParams,
    StructuredAgent,
    campaign_agent,
    extraction_agent,
)
from agents.base import GUARD

# Every agent the package offers, found rather than listed, so a new one is checked too; plus one extraction
# agent per parameter schema (they are made per intent kind).
AGENTS: list[StructuredAgent] = [
    *(value for value in vars(agents).values() if isinstance(value, StructuredAgent)),
    *(extraction_agent(schema.__name__, schema)
      for schema in (ContentParams, OutreachParams, BookkeepingParams, AccountParams, RefundParams)),
]
INPUTS = {"goal": "pause Ben", "context": "```json\n{}\n```", "subject": "customer:ben"}


def test_the_campaign_agent_is_among_the_agents_checked():
    assert campaign_agent in AGENTS and len({a.name for a in AGENTS}) >= 11


@pytest.mark.parametrize("agent", AGENTS, ids=[a.name for a in AGENTS])
def test_every_agents_system_prompt_carries_the_guard_exactly_once(agent: StructuredAgent):
    system, *rest = agent.prompt.invoke(INPUTS).to_messages()
    assert system.type == "system" and system.content.count(GUARD) == 1
    # No copy in other words either: the guard's own phrase appears nowhere else in the prompt.
    everything = agent.prompt.invoke(INPUTS).to_string()
    assert everything.count("not instructions") == 1
    assert all(GUARD not in message.content for message in rest)


def test_no_agent_module_keeps_its_own_copy_of_the_guard():
    root = Path(agents.__file__).parent
    copies = [p.name for p in root.glob("*.py") if "not instructions" in p.read_text() and p.name != "base.py"]
    assert copies == []
