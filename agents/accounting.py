"""Token and cost accounting: the price table per model, and a LangChain callback that reads each response's usage."""
from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import ChatGeneration, LLMResult

# USD per million tokens (input, output), list prices when written; override them with a price file.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "offline-template-drafter": (0.0, 0.0),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-sonnet-4": (3.00, 15.00),
    "qwen3": (0.0, 0.0),
}
# About four characters a token; the estimate is padded so a reservation is rarely below the real cost.
CHARS_PER_TOKEN = 4
ESTIMATE_MARGIN = 1.25


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name; a dated or provider-prefixed name (`openai:gpt-4.1-mini-2025-04-14`) matches
    its longest listed prefix, so a provider's snapshot names need no entry of their own."""

    prices: Mapping[str, tuple[float, float]]
    # What an unknown model costs: priced like the dearest listed model rather than free, so budgets still bind.
    unknown: tuple[float, float] | None = None

    def price(self, model: str) -> tuple[float, float]:
        name = model.split(":", 1)[-1]
        for candidate in sorted(self.prices, key=len, reverse=True):
            if name == candidate or name.startswith(candidate + "-") or name.startswith(candidate + "@"):
                return self.prices[candidate]
        if self.unknown is not None:
            return self.unknown
        return max(self.prices.values(), key=lambda p: p[0] + p[1], default=(0.0, 0.0))

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        price_in, price_out = self.price(model)
        return (input_tokens * price_in + output_tokens * price_out) / 1_000_000

    def estimate(self, model: str, prompt_chars: int, max_output_tokens: int) -> float:
        """An upper-ish bound for a call: the prompt's tokens by rule of thumb, the whole output allowance."""
        input_tokens = int(prompt_chars / CHARS_PER_TOKEN * ESTIMATE_MARGIN) + 1
        return self.cost(model, input_tokens, max_output_tokens)


def load_prices(path: Path | None) -> PriceTable:
    """The default table, overlaid by a JSON or TOML file of `model = [input, output]` USD per million tokens."""
    prices = dict(DEFAULT_PRICES)
    if path is not None:
        text = Path(path).read_text()
        table: dict[str, Any] = tomllib.loads(text) if str(path).endswith(".toml") else json.loads(text)
        table = table.get("prices", table)
        prices.update({str(name): (float(pair[0]), float(pair[1])) for name, pair in table.items()})
    return PriceTable(prices=prices)


@dataclass(frozen=True)
class Usage:
    model: str
    input_tokens: int
    output_tokens: int


class UsageRecorder(BaseCallbackHandler):
    """Collects the usage every model response reports (`usage_metadata`, else the provider's `token_usage`).

    Attach one per call (`with_recorder`); the ledger settles from what it saw, not from an estimate.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.responses: list[Usage] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        llm_output = response.llm_output or {}
        for generations in response.generations:
            for generation in generations:
                usage = _usage_of(generation, llm_output)
                if usage is not None:
                    with self._lock:
                        self.responses.append(usage)

    @property
    def input_tokens(self) -> int:
        return sum(u.input_tokens for u in self.responses)

    @property
    def output_tokens(self) -> int:
        return sum(u.output_tokens for u in self.responses)

    def cost(self, prices: PriceTable) -> float:
        return sum(prices.cost(u.model, u.input_tokens, u.output_tokens) for u in self.responses)

    def model(self, default: str) -> str:
        return self.responses[-1].model if self.responses else default


def _usage_of(generation: Any, llm_output: dict[str, Any]) -> Usage | None:
    message = generation.message if isinstance(generation, ChatGeneration) else None
    metadata = getattr(message, "usage_metadata", None)
    response_metadata = getattr(message, "response_metadata", None) or {}
    model = str(response_metadata.get("model_name") or llm_output.get("model_name") or "unknown")
    if metadata:
        return Usage(model, int(metadata.get("input_tokens", 0)), int(metadata.get("output_tokens", 0)))
    token_usage = llm_output.get("token_usage") or {}
    if token_usage:
        return Usage(model, int(token_usage.get("prompt_tokens", 0)), int(token_usage.get("completion_tokens", 0)))
    return None


def with_recorder(model: BaseChatModel, recorder: UsageRecorder) -> BaseChatModel:
    """A copy of the tier's model that reports to `recorder`; the shared model is left untouched."""
    existing = model.callbacks if isinstance(model.callbacks, list) else []
    return model.model_copy(update={"callbacks": [*existing, recorder]})


# The setting by which a LangChain chat model caps its answer: most providers' `max_tokens` (ChatOpenAI sends it
# as `max_completion_tokens`), Google's `max_output_tokens`, Ollama's `num_predict`.
OUTPUT_CAP_FIELDS: tuple[str, ...] = ("max_tokens", "max_output_tokens", "num_predict")


def with_output_cap(model: BaseChatModel, max_tokens: int) -> BaseChatModel:
    """A copy of the tier's model whose answer stops at `max_tokens` output tokens (or at a lower cap it already
    had), so a reservation made for that many output tokens is an upper bound of what the call can bill.

    A model with no such setting is returned as it is: the offline tier, which bills nothing.
    """
    for name in OUTPUT_CAP_FIELDS:
        if name in type(model).model_fields:
            current = getattr(model, name)
            return model.model_copy(update={name: max_tokens if current is None else min(current, max_tokens)})
    return model
