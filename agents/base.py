"""What every specialist agent is: a prompt and an output schema, run on a model tier, reporting its usage."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Generic, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel

Output = TypeVar("Output", bound=BaseModel)


class AgentResult(BaseModel, Generic[Output]):
    output: Output
    model: str
    input_tokens: int
    output_tokens: int


def model_name(model: BaseChatModel) -> str:
    for attribute in ("model_name", "model"):
        value = getattr(model, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


class StructuredAgent(Generic[Output]):
    """Stateless: the same inputs give the same prompt, whose hash lets the control plane reuse a finished call."""

    def __init__(self, name: str, prompt: ChatPromptTemplate, schema: type[Output]) -> None:
        self.name = name
        self.prompt = prompt
        self.schema = schema

    def prompt_hash(self, inputs: dict[str, Any]) -> str:
        rendered = self.prompt.invoke(inputs).to_string()
        return hashlib.sha256(f"{self.name}\n{rendered}".encode()).hexdigest()

    def invoke(self, model: BaseChatModel, inputs: dict[str, Any]) -> AgentResult[Output]:
        chain = self.prompt | model.with_structured_output(self.schema, include_raw=True)
        answer = chain.invoke(inputs)
        if answer.get("parsing_error") is not None or answer.get("parsed") is None:
            raise ValueError(f"{self.name}: the model's answer did not fit {self.schema.__name__}") from answer.get(
                "parsing_error"
            )
        usage = getattr(answer["raw"], "usage_metadata", None) or {}
        return AgentResult[self.schema](  # type: ignore[name-defined]
            output=answer["parsed"],
            model=model_name(model),
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
        )


def request_prompt(system: str) -> ChatPromptTemplate:
    """The prompt every proposing agent shares: its own system text, then the request and the context block."""
    return ChatPromptTemplate.from_messages([("system", system), ("human", "Request: {goal}\n\nContext:\n{context}")])


def context_block(context: dict[str, Any]) -> str:
    """The context as the fenced JSON block every agent prompt carries (and the offline tier reads)."""
    return "```json\n" + json.dumps(context, sort_keys=True, default=str, indent=1) + "\n```"
