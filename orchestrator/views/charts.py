"""Charts as PNG bytes (matplotlib, Agg): the budget burn of the digest and the dashboard.

Drawn here, not in bot/, because the digest is composed by a scheduled job in a worker, and its
outbox row must carry the whole message, image included, for whichever process delivers it.
"""
from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from orchestrator.budget.spend import BurnDay

WIDTH_PX = 800
HEIGHT_PX = 400
DPI = 100
OVER = "#c0392b"
UNDER = "#2e86c1"
CAP = "#7f8c8d"


def budget_burn_png(days: list[BurnDay], *, daily_cap: float, title: str = "Model spend per day") -> bytes:
    """Bars of spend per day against the daily cap (a dashed line); days over the cap in red. 800×400 px."""
    # A Figure without pyplot keeps no global state, so workers and the web app may draw in threads.
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [d.day.strftime("%d %b") for d in days]
    values = [d.usd for d in days]
    colours = [OVER if daily_cap > 0 and v > daily_cap else UNDER for v in values]
    axes.bar(range(len(days)), values, color=colours)
    axes.axhline(daily_cap, color=CAP, linestyle="--", linewidth=1.5, label=f"daily cap ${daily_cap:,.2f}")
    step = max(1, len(days) // 10)
    axes.set_xticks(range(0, len(days), step), labels[::step], rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("USD")
    axes.set_ylim(0, max([daily_cap, *values]) * 1.15 or 1.0)
    axes.set_title(f"{title} — {sum(values):,.2f} USD in {len(days)} days")
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.18)
    buffer = io.BytesIO()
    # No bbox_inches="tight": it would change the pixel size the senders and tests rely on.
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
