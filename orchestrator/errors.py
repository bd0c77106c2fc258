"""The control plane's errors: one root, a subclass per failure, each carrying what the caller needs."""
from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError

# Our own stores failing (a restart, a failover, a full pool): nothing says the work is wrong, so it is tried again
# later, never undone or refused. The engine leaves a step to recovery; a front end retries what it acked.
STORES_UNAVAILABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout,
                                                   RedisError)


class OpsError(Exception):
    """Root of every error the control plane raises on purpose."""


class NotFound(OpsError):
    def __init__(self, what: str, ref: object) -> None:
        super().__init__(f"no {what} {ref}")
        self.what = what
        self.ref = ref


class InvalidTransition(OpsError):
    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"a run that is {state} cannot {event}")
        self.state = state
        self.event = event


class ApprovalAlreadyDecided(OpsError):
    def __init__(self, decision: str, decided_by: str, decided_at: datetime) -> None:
        super().__init__(f"this approval was already {decision} by {decided_by} at {decided_at:%Y-%m-%d %H:%M} UTC")
        self.decision = decision
        self.decided_by = decided_by
        self.decided_at = decided_at


class ApprovalExpired(OpsError):
    """Too late to decide. `recorded` is True when this attempt is what marked the approval expired."""

    def __init__(self, expired_at: datetime, *, recorded: bool = False) -> None:
        super().__init__(f"this approval expired at {expired_at:%Y-%m-%d %H:%M} UTC")
        self.expired_at = expired_at
        self.recorded = recorded


class ApprovalStale(OpsError):
    """The action changed after the approval was asked; the old approval no longer applies."""


class InvalidConstraint(OpsError):
    """A constraint in the request's words that cannot be kept as said (a deadline that is no date)."""


class BudgetExceeded(OpsError):
    def __init__(self, cap: float, spent: float) -> None:
        super().__init__(f"budget cap ${cap:.2f} reached (spent ${spent:.2f})")
        self.cap = cap
        self.spent = spent


class OwnershipLost(OpsError):
    """This worker no longer holds the run's lock (its session ended: a terminated backend, a failover, a
    pooler that dropped it), so another worker may be advancing the run: stop now and touch nothing."""

    def __init__(self, run_id: int, why: str) -> None:
        super().__init__(f"run {run_id} is no longer this worker's: {why}")
        self.run_id = run_id
        self.why = why
