"""The fence: the check, made before every outside action, that the caller still owns the work it acts for.

The owner of the work is the orchestrator's run lock, which connectors cannot import; and a step reaches a
connector through calls (a workflow, the action registry, a retry helper) that should not each have to carry
it, nor remember to check it. So the engine sets the fence of the run it advances in a ContextVar for as long
as it works on that run, and every claim of an outside action (`idempotency.ActionClaims`), every compensation
and the budget's model call check it. A ContextVar rather than a module global because the fence is per run:
two runs advanced in two threads of one process each see their own, and a connector called outside any run
(a test, a command) sees none and is not fenced.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class Fence(Protocol):
    """The caller's hold on its work, for as long as it lasts."""

    @property
    def owner(self) -> str:
        """The token this hold claims actions under: stable while the hold lasts, new with the next one."""
        ...

    def check(self) -> None:
        """Return if the work is still the caller's; raise (the fence owner's own error) if it is not.

        Connectors let that error through untouched: it means "stop now, touch nothing".
        """
        ...


_current: ContextVar[Fence | None] = ContextVar("opsos_fence", default=None)


@contextmanager
def fenced(fence: Fence) -> Iterator[None]:
    """Check `fence` before every outside action made inside this block (in this thread or task)."""
    token = _current.set(fence)
    try:
        yield
    finally:
        _current.reset(token)


def fence_owner() -> str | None:
    """The current fence's owner token, unchecked; None outside any fence."""
    fence = _current.get()
    return None if fence is None else fence.owner


def check_fence() -> str:
    """Check the current fence, if any, and return the owner token to claim an action under.

    Raises what the fence raises when its hold is lost. Outside any fence each call is an owner of its own.
    """
    fence = _current.get()
    if fence is None:
        return uuid.uuid4().hex
    fence.check()
    return fence.owner
