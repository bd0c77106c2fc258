"""The offline drafting tier: a deterministic template drafter behind LangChain's BaseChatModel.

It is not a language model. It fills a template registered for the requested output schema from
the JSON context block of the prompt, so every workflow runs with no API key and no download, and
gives the same draft for the same context. Configure a real provider to get real drafting.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from agents.errors import TierCannotDraft

Template = Callable[[dict[str, Any]], dict[str, Any]]

_CONTEXT_BLOCK = re.compile(r"```json\s*(\{.*?\})\s*```", re.DOTALL)


def context_of(messages: Sequence[BaseMessage]) -> dict[str, Any]:
    """The JSON context block of the last message that has one (agents' prompts always carry one)."""
    for message in reversed(messages):
        if isinstance(message.content, str) and (match := _CONTEXT_BLOCK.search(message.content)):
            return json.loads(match.group(1))
    return {}


def _tokens(text: str) -> int:
    # About four characters a token, the usual rule of thumb; enough for budgets on a free tier.
    return max(1, len(text) // 4)


class OfflineTemplateDrafter(BaseChatModel):
    """Deterministic drafts from templates keyed by output schema name; usage reported like a real model."""

    templates: dict[str, Template] = Field(default_factory=dict)
    model_name: str = "offline-template-drafter"

    @property
    def _llm_type(self) -> str:
        return "offline-template"

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(tool) for tool in tools], tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        context = context_of(messages)
        prompt_text = "".join(str(m.content) for m in messages)
        tools = kwargs.get("tools") or []
        if tools:
            name = tools[0]["function"]["name"]
            template = self.templates.get(name)
            if template is None:
                raise TierCannotDraft(name)
            args = template(context)
            message = AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"offline-{name}"}])
            output_text = json.dumps(args)
        else:
            output_text = str(context.get("summary_of") or context.get("text") or "")
            message = AIMessage(content=output_text)
        usage = {"input_tokens": _tokens(prompt_text), "output_tokens": _tokens(output_text)}
        message.usage_metadata = {**usage, "total_tokens": usage["input_tokens"] + usage["output_tokens"]}
        message.response_metadata = {"model_name": self.model_name}
        return ChatResult(generations=[ChatGeneration(message=message)])
