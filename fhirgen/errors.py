"""The one error tree of fhirgen, translated once at each boundary.

``TransientError`` means "try again later" (timeouts, connection errors, 429, 5xx);
``PermanentError`` means "record why and stop" (bad input, 4xx, verification failure).
Boundaries map HTTP statuses and exceptions to these types; nothing inspects message text.
"""

from __future__ import annotations


class FhirgenError(Exception):
    """Base class of every error fhirgen raises on purpose."""


class TransientError(FhirgenError):
    """A failure that may succeed on retry; ``retry_after`` is a hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(FhirgenError):
    """A failure that retrying cannot fix."""


class InputError(PermanentError):
    """Input data that fhirgen cannot use, with where it was found (``file[:line]``)."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(message)
        self.where = where

    def __str__(self) -> str:
        text = super().__str__()
        return f"{self.where}: {text}" if self.where else text


class ConfigError(PermanentError):
    """A setting that is missing or invalid."""


class VerificationError(PermanentError):
    """A draft that cannot be made safe to write (e.g. a required section has no support)."""


class SubscriptionInactive(PermanentError):
    """A notification for a subscription that is paused or off, found inside the transaction
    that would record it (so a pause holds at once in every process); nothing is recorded."""

    def __init__(self, subscription_id: str, status: str) -> None:
        super().__init__(f"subscription is {status}")
        self.subscription_id = subscription_id
        self.status = status


class StoreUnavailable(TransientError):
    """The job store cannot be reached or is locked right now (the webhook answers 503).

    Raised by the store for SQLAlchemy's ``OperationalError``/``InterfaceError`` and any
    disconnect (``fhirgen.store``), chained to the driver's error."""


class BrokerUnavailable(TransientError):
    """The broker (Redis) refused or dropped a message; the outbox relay sends it later.

    Raised where a task is sent (``workers.enqueue``) for kombu's and redis-py's connection
    errors and ``OSError``, chained to the original."""
