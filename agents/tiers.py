"""Model tiers: `draft` and `reason` chat models, configured by LangChain model strings, offline by default."""
from __future__ import annotations

from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from agents.content import offline_campaign
from agents.offline import OfflineTemplateDrafter, Template

OFFLINE = "offline"

OFFLINE_TEMPLATES: dict[str, Template] = {"CampaignDraft": offline_campaign}


@dataclass(frozen=True)
class ModelTiers:
    draft: BaseChatModel
    reason: BaseChatModel

    def tier(self, name: str) -> BaseChatModel:
        return {"draft": self.draft, "reason": self.reason}[name]


def chat_model(spec: str, *, base_url: str | None = None, api_key: str | None = None) -> BaseChatModel:
    """`offline`, or any `init_chat_model` string: `openai:gpt-4.1-mini`, `anthropic:claude-…`, `ollama:qwen3`."""
    if spec == OFFLINE:
        return OfflineTemplateDrafter(templates=OFFLINE_TEMPLATES)
    # Imported here: the provider packages are optional extras of the project.
    from langchain.chat_models import init_chat_model

    options = {key: value for key, value in {"base_url": base_url, "api_key": api_key}.items() if value}
    return init_chat_model(spec, **options)


def build_tiers(*, draft: str = OFFLINE, reason: str = OFFLINE, base_url: str | None = None,
                api_key: str | None = None) -> ModelTiers:
    return ModelTiers(
        draft=chat_model(draft, base_url=base_url, api_key=api_key),
        reason=chat_model(reason, base_url=base_url, api_key=api_key),
    )
