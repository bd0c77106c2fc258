"""Fixtures of the front ends' tests."""
from tests.bot.embedded import data_dir

__all__ = ["data_dir"]
