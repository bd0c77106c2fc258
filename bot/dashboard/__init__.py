"""The operator's dashboard: `add_dashboard(app, ops)` adds its pages, actions and `/metrics` to an aiohttp app."""
from bot.dashboard.app import COOKIE, add_dashboard

__all__ = ["COOKIE", "add_dashboard"]
