"""Agents: specialist LangChain agents behind model tiers. They propose; only the orchestrator acts."""
from agents.accounting import DEFAULT_PRICES, PriceTable, UsageRecorder, load_prices, with_output_cap, with_recorder
from agents.base import AgentResult, StructuredAgent, context_block, model_name
from agents.bookkeeping import BookkeepingProposal, bookkeeping_agent
from agents.content import CampaignDraft, campaign_agent
from agents.errors import AgentError, RegistryError, TierCannotDraft
from agents.fulfillment import FulfillmentProposal, fulfillment_agent
from agents.offline import OfflineTemplateDrafter
from agents.outreach import OutreachProposal, outreach_agent
from agents.params import (
    AccountParams,
    BookkeepingParams,
    ContentParams,
    KindParams,
    OutreachParams,
    RefundParams,
    extraction_agent,
    missing,
)
from agents.posts import ContentProposal, post_agent
from agents.proposals import (
    ACTION_TYPES,
    CATEGORIES,
    AnyAction,
    Categorise,
    ChargeCustomer,
    PauseAccess,
    PostContent,
    Proposal,
    ProvisionAccount,
    RefundCharge,
    ResumeAccess,
    SendEmail,
)
from agents.qualify import LeadScore, LeadScores, qualify_agent
from agents.router import IntentKind, KindRegistry, Router, RouteResult, default_registry_path
from agents.summariser import InteractionSummary, summarise, summary_agent, summary_prompt_chars
from agents.tiers import OFFLINE, TIER_ORDER, ModelTiers, build_tiers, chat_model, cheaper_tiers

__all__ = [
    "ACTION_TYPES",
    "CATEGORIES",
    "DEFAULT_PRICES",
    "OFFLINE",
    "TIER_ORDER",
    "AccountParams",
    "AgentError",
    "AgentResult",
    "AnyAction",
    "BookkeepingParams",
    "BookkeepingProposal",
    "CampaignDraft",
    "Categorise",
    "ChargeCustomer",
    "ContentParams",
    "ContentProposal",
    "FulfillmentProposal",
    "IntentKind",
    "InteractionSummary",
    "KindParams",
    "KindRegistry",
    "LeadScore",
    "LeadScores",
    "ModelTiers",
    "OfflineTemplateDrafter",
    "OutreachParams",
    "OutreachProposal",
    "PauseAccess",
    "PostContent",
    "PriceTable",
    "Proposal",
    "ProvisionAccount",
    "RefundCharge",
    "RefundParams",
    "RegistryError",
    "ResumeAccess",
    "RouteResult",
    "Router",
    "SendEmail",
    "StructuredAgent",
    "TierCannotDraft",
    "UsageRecorder",
    "bookkeeping_agent",
    "build_tiers",
    "campaign_agent",
    "chat_model",
    "cheaper_tiers",
    "context_block",
    "default_registry_path",
    "extraction_agent",
    "fulfillment_agent",
    "load_prices",
    "missing",
    "model_name",
    "outreach_agent",
    "post_agent",
    "qualify_agent",
    "summarise",
    "summary_agent",
    "summary_prompt_chars",
    "with_output_cap",
    "with_recorder",
]
