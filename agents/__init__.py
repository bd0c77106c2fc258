"""Agents: specialist LangChain agents behind model tiers. They propose; only the orchestrator acts."""
from agents.base import AgentResult, StructuredAgent, context_block, model_name
from agents.content import CampaignDraft, campaign_agent
from agents.offline import OfflineTemplateDrafter
from agents.tiers import OFFLINE, ModelTiers, build_tiers, chat_model

__all__ = [
    "OFFLINE",
    "AgentResult",
    "CampaignDraft",
    "ModelTiers",
    "OfflineTemplateDrafter",
    "StructuredAgent",
    "build_tiers",
    "campaign_agent",
    "chat_model",
    "context_block",
    "model_name",
]
