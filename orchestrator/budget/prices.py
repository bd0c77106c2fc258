"""Model prices: the configured price table (`OPSOS_MODEL_PRICES_PATH` over the defaults), read once per process."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from agents import PriceTable, load_prices


@lru_cache(maxsize=8)
def price_table(path: Path | None) -> PriceTable:
    """The price table every estimate and every settled cost is computed with."""
    return load_prices(path)
