"""The front ends' errors: one root for what `bot/` raises on purpose, each saying what the operator must fix."""
from __future__ import annotations


class BotError(Exception):
    """Root of every error the front ends raise on purpose."""


class ConfigurationError(BotError):
    """The settings cannot start this front end (a missing secret, a token the platform refused)."""
