"""Shared steps of the budget tests: priced model tiers, spend already made, a request that calls a model."""
import json

from agents import OfflineTemplateDrafter
from agents.tiers import OFFLINE_TEMPLATES
from orchestrator import budget
from orchestrator.budget import Caps


class OneKind:
    def classify(self, text):
        from orchestrator import Classification

        return Classification(kind="account_pause", workflow="account_pause", confidence=1.0)


def priced(services, settings, tmp_path, *, draft: float, route: float = 0.0, **budget_settings) -> None:
    """Give the draft (and route) tier a price, and the settings the caps under test."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"pricey-draft": [draft, draft * 4], "pricey-route": [route, route * 4]}))
    services.settings = settings.model_copy(update={"model_prices_path": prices, **budget_settings})
    services.models = services.models.__class__(
        draft=OfflineTemplateDrafter(templates=OFFLINE_TEMPLATES, model_name="pricey-draft"),
        reason=services.models.reason,
        route=OfflineTemplateDrafter(templates=OFFLINE_TEMPLATES, model_name="pricey-route"),
    )


def prespend(services, usd: float) -> None:
    today = budget.local_today(services.now(), services.settings)
    caps = Caps.from_settings(services.settings)
    with services.stores.pool.connection() as conn:
        reservation = budget.reserve(conn, run_id=None, step="earlier", tier="draft", model="m", estimate_usd=0,
                                     today=today, caps=caps)
    with services.stores.pool.connection() as conn, conn.transaction():
        budget.settle(conn, reservation, model="m", input_tokens=0, output_tokens=0, cost_usd=usd, caps=caps)
