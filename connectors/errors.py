"""The connectors' errors. The control plane translates them; they carry what a retry policy needs."""
from __future__ import annotations


class ConnectorError(Exception):
    """Root of the errors an outside action raises."""


class ConnectorUnavailable(ConnectorError):
    """The outside system could not be reached or refused for now; trying later may work."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CircuitOpen(ConnectorUnavailable):
    """Too many recent failures: calls are refused without trying until the breaker half-opens."""


class ActionDeclined(ConnectorError):
    """The outside system answered and said no (a card declined); retrying the same way may still work later."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ActionRejected(ConnectorError):
    """The outside system refused the request as made (a bad parameter, a record in a state that forbids it):
    the same request will not work later either. `code` is the system's own name for the refusal."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class CredentialsRejected(ActionRejected):
    """The outside system does not accept the key or password opsos was given."""


class UnknownRecord(ConnectorError):
    """The action names a record the outside system does not have (a contact, a charge, a transaction)."""

    def __init__(self, message: str, *, record: str) -> None:
        super().__init__(message)
        self.record = record


class BadFile(ConnectorError):
    """A file to import cannot be read as records at all (empty, or no column to key them by); nothing was read."""


class UnknownAction(ConnectorError):
    """No connector carries this action type, or the action is not the model its connector takes."""

    def __init__(self, message: str, *, action_type: str, known: tuple[str, ...]) -> None:
        super().__init__(message)
        self.action_type = action_type
        self.known = known


class ActionInProgress(ConnectorError):
    """Another attempt holds this action's key and its claim has not expired: try again later.

    Not a failure and no reason to compensate: the other attempt may be sending right now. `retry_after` is
    how long its claim still lasts (seconds, on the database's clock); after that the key may be taken over.
    """

    def __init__(self, message: str, *, key: str, retry_after: float) -> None:
        super().__init__(message)
        self.key = key
        self.retry_after = retry_after


class ClaimTakenOver(ConnectorError):
    """This attempt acted under `key`, but its claim had run out and another attempt took the key over before
    the outcome was recorded: the key's record is the other attempt's, and nothing of this one was written.

    Not a failure and no reason to compensate, nor to wait and retry (unlike ActionInProgress): the other
    attempt holds the work this one was doing, so the caller stops, as when its run is lost.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key
