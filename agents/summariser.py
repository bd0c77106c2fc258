"""The summariser agent: compacts one subject's old interaction memories into a short summary on the draft tier."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field

from agents.base import AgentResult, StructuredAgent, agent_prompt, context_block


class InteractionSummary(BaseModel):
    """A summary of past interactions with one subject (a customer, a campaign), kept as a memory."""

    summary: str = Field(description="A few plain sentences: what was asked, promised, decided or resolved.")


SYSTEM = (
    "You keep the long-term memory of a one-person business. Summarise the past interactions with the "
    "subject in the context into a few plain sentences an agent can rely on later: who asked what, what was "
    "promised, decided or resolved, with names, dates, amounts and ids kept exactly. Use only facts from the "
    "context."
)
PROMPT = agent_prompt(SYSTEM, "Subject: {subject}\n\nContext:\n{context}")

summary_agent: StructuredAgent[InteractionSummary] = StructuredAgent("memory.summarise", PROMPT, InteractionSummary)

# The offline summary names at most this many interactions, then counts the rest.
OFFLINE_SHOWN = 10
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def _first_sentence(text: str) -> str:
    sentence = _SENTENCE_END.split(" ".join(text.split()), maxsplit=1)[0]
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


def offline_summary(context: dict[str, Any]) -> dict[str, Any]:
    """The offline tier's summary: a count, then the first sentence of each interaction, oldest first."""
    texts = [str(i.get("text", "")) for i in context.get("interactions", []) if str(i.get("text", "")).strip()]
    subject = context.get("subject") or "this subject"
    noun = "interaction" if len(texts) == 1 else "interactions"
    shown = " ".join(_first_sentence(t) for t in texts[:OFFLINE_SHOWN])
    rest = len(texts) - OFFLINE_SHOWN
    more = f" (and {rest} more)" if rest > 0 else ""
    return {"summary": f"{len(texts)} earlier {noun} with {subject}: {shown}{more}"}


def _inputs(subject: str, texts: Sequence[str]) -> dict[str, Any]:
    context = {"subject": subject, "interactions": [{"n": n, "text": t} for n, t in enumerate(texts, start=1)]}
    return {"subject": subject, "context": context_block(context)}


def summary_prompt_chars(subject: str, texts: Sequence[str]) -> int:
    """The prompt's length, for the caller to estimate the call's cost before making it."""
    return len(summary_agent.prompt.invoke(_inputs(subject, texts)).to_string())


def summarise(model: BaseChatModel, *, subject: str, texts: Sequence[str]) -> AgentResult[InteractionSummary]:
    """One model call: the summary of `texts` (oldest first) about `subject`; raises ValueError on a bad answer."""
    return summary_agent.invoke(model, _inputs(subject, texts))
