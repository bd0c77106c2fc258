"""Model tiers: `route`, `draft` and `reason` chat models, configured by LangChain model strings, offline by default."""
from __future__ import annotations

from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel

from agents.bookkeeping import offline_bookkeeping
from agents.content import offline_campaign
from agents.fulfillment import offline_fulfillment
from agents.offline import OfflineTemplateDrafter, Template
from agents.outreach import offline_outreach
from agents.params import OFFLINE_PARAM_TEMPLATES
from agents.posts import offline_post
from agents.qualify import offline_qualify
from agents.summariser import offline_summary

OFFLINE = "offline"
# Cheapest first: a step allowed to step down near a cap moves left along this line.
TIER_ORDER: tuple[str, ...] = ("route", "draft", "reason")

OFFLINE_TEMPLATES: dict[str, Template] = {
    "CampaignDraft": offline_campaign,
    "ContentProposal": offline_post,
    "OutreachProposal": offline_outreach,
    "BookkeepingProposal": offline_bookkeeping,
    "FulfillmentProposal": offline_fulfillment,
    "LeadScores": offline_qualify,
    "InteractionSummary": offline_summary,
    **OFFLINE_PARAM_TEMPLATES,
}


def _offline() -> BaseChatModel:
    return OfflineTemplateDrafter(templates=OFFLINE_TEMPLATES)


@dataclass(frozen=True)
class ModelTiers:
    draft: BaseChatModel
    reason: BaseChatModel
    route: BaseChatModel = field(default_factory=_offline)

    def tier(self, name: str) -> BaseChatModel:
        return {"route": self.route, "draft": self.draft, "reason": self.reason}[name]


def cheaper_tiers(tier: str) -> tuple[str, ...]:
    """The tiers below `tier`, nearest first: where a step may step down to."""
    return tuple(reversed(TIER_ORDER[: TIER_ORDER.index(tier)]))


def chat_model(spec: str, *, base_url: str | None = None, api_key: str | None = None) -> BaseChatModel:
    """`offline`, or any `init_chat_model` string: `openai:gpt-4.1-mini`, `anthropic:claude-…`, `ollama:qwen3`.

    `base_url` points an OpenAI-compatible provider elsewhere (a local vLLM, LiteLLM, a test stand-in).
    """
    if spec == OFFLINE:
        return _offline()
    # Imported here: the provider packages are optional extras of the project.
    from langchain.chat_models import init_chat_model

    options = {key: value for key, value in {"base_url": base_url, "api_key": api_key}.items() if value}
    return init_chat_model(spec, **options)


def build_tiers(*, draft: str = OFFLINE, reason: str = OFFLINE, route: str = OFFLINE, base_url: str | None = None,
                api_key: str | None = None, base_urls: dict[str, str] | None = None,
                api_keys: dict[str, str] | None = None) -> ModelTiers:
    """One model per tier; `base_urls` / `api_keys` by tier name override the shared `base_url` / `api_key`."""
    base_urls, api_keys = base_urls or {}, api_keys or {}

    def build(name: str, spec: str) -> BaseChatModel:
        return chat_model(spec, base_url=base_urls.get(name) or base_url, api_key=api_keys.get(name) or api_key)

    return ModelTiers(draft=build("draft", draft), reason=build("reason", reason), route=build("route", route))
