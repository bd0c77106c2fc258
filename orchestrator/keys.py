"""Idempotency keys: the one place a step's key and its actions' keys are built.

A step's key is `run:<id>:<step>` and stays the same across retries and re-runs; the actions it takes
on outside systems extend it (`run:7:send_emails:c-104`), so a step re-run after a crash finds its
earlier actions done and does not repeat them. The metadata index names a step by the same key.
"""
from __future__ import annotations


def step_key(run_id: int, step: str) -> str:
    return run_prefix(run_id) + step


def action_key(run_id: int, step: str, *parts: object) -> str:
    """The key of one outside action of a step, e.g. one email of a campaign: `run:7:send_emails:c-104`."""
    return ":".join([step_key(run_id, step), *map(str, parts)])


def run_step_of(key: str) -> tuple[int, str] | None:
    """The run id and step an action key (or step key) was built for; None for a key not built here."""
    parts = key.split(":", 3)
    if len(parts) < 3 or parts[0] != "run" or not parts[1].isdigit() or not parts[2]:
        return None
    return int(parts[1]), parts[2]


def run_prefix(run_id: int) -> str:
    """What every key of a run's steps and actions starts with (`run:7:`), so a run's keys are found together."""
    return f"run:{run_id}:"
