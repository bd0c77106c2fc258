"""Retry with exponential backoff, and a circuit breaker, for calls to outside systems."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from connectors.errors import ActionDeclined, CircuitOpen, ConnectorUnavailable

T = TypeVar("T")


class RetryPolicy(BaseModel):
    attempts: int = 3
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    # Declines (a card refused) are worth retrying in dunning; programming errors never are.
    retry_declines: bool = True

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))


def with_retries(
    call: Callable[[int], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_failure: Callable[[int, Exception], None] | None = None,
) -> T:
    """Run `call(attempt)` until it succeeds or the policy's attempts are spent; re-raise the last error."""
    retryable: tuple[type[Exception], ...] = (ConnectorUnavailable,)
    if policy.retry_declines:
        retryable = (ConnectorUnavailable, ActionDeclined)
    for attempt in range(1, policy.attempts + 1):
        try:
            return call(attempt)
        except retryable as error:
            if on_failure is not None:
                on_failure(attempt, error)
            if attempt == policy.attempts:
                raise
            wait = policy.delay(attempt)
            if isinstance(error, ConnectorUnavailable) and error.retry_after:
                wait = max(wait, error.retry_after)
            sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")


class CircuitBreaker:
    """Opens after `threshold` consecutive unavailability errors; lets one trial call through after `reset_after`.

    Per process, like most breakers: each worker learns for itself that a service is down, which
    costs at most `threshold` failed calls per worker and needs no shared state.
    """

    def __init__(
        self, name: str, *, threshold: int = 5, reset_after: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self._opened_at is not None:
                remaining = self.reset_after - (self._clock() - self._opened_at)
                if remaining > 0:
                    raise CircuitOpen(f"{self.name} circuit is open", retry_after=remaining)
        try:
            result = fn()
        except ConnectorUnavailable:
            with self._lock:
                self._failures += 1
                if self._failures >= self.threshold:
                    self._opened_at = self._clock()
            raise
        with self._lock:
            self._failures = 0
            self._opened_at = None
        return result
