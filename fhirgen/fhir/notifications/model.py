"""What a parsed notification is (``Notification``, ``NotificationEvent``), what the webhook
answers a bad one with (``NotificationError``), and the media types and limits accepted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fhirgen.errors import InputError

FHIR_JSON_MEDIA_TYPES: Final = frozenset(
    {"application/fhir+json", "application/json", "application/json+fhir"}
)
"""Media types accepted for a notification body (parameters such as ``charset`` are ignored)."""

TOPIC_KINDS: Final = ("handshake", "heartbeat", "event-notification", "query-status", "query-event")
"""The notification types of topic-based subscriptions (R4 Backport IG, R4B, R5)."""

MAX_COUNT: Final = 2**31 - 1
"""The largest event number or event count accepted. FHIR's integer64 goes to 2^63 - 1, but the
store keeps them in integer columns (32-bit in PostgreSQL): a larger one is refused here, as
bad input, rather than failing the store's write."""


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    """One event of a topic-based notification."""

    number: int | None
    """``event-number`` / ``eventNumber``; watch for gaps."""
    focus: str | None
    """What the event is about, as ``Type/id`` (absolute URLs reduced); None when ``empty``."""
    timestamp: str | None
    """When the event happened on the server, as sent."""


@dataclass(frozen=True, slots=True)
class Notification:
    """What a notification says, reduced to what the webhook needs to dedupe and enqueue."""

    kind: str
    """``rest-hook``, ``ping``, ``deleted``, or a topic-based type (see :data:`TOPIC_KINDS`)."""
    subscription: str | None = None
    """The subscription the status resource names, as ``Subscription/<id>`` where possible."""
    topic: str | None = None
    """The topic canonical URL of a topic-based notification."""
    status: str | None = None
    """The subscription status the server reports (``requested``, ``active``, ``error``, …)."""
    events_since: int | None = None
    """``events-since-subscription-start``."""
    events: tuple[NotificationEvent, ...] = ()
    """The events of a topic-based notification, in the order sent."""
    focus: tuple[str, ...] = ()
    """``Type/id`` of everything the notification is about: event foci first, then the resources
    a ``full-resource`` Bundle carries; for rest-hook shapes the resource or the URL's path."""
    version: str | None = None
    """``meta.versionId`` of a rest-hook payload resource."""
    versions: tuple[tuple[str, str], ...] = ()
    """``(Type/id, versionId)`` of what the notification names at a known version: a rest-hook
    payload, a resource a ``full-resource`` Bundle carries, an event focus that is a
    ``…/_history/<vid>`` reference. A resource named at two versions is left out."""
    content: str = "none"
    """``empty``, ``id-only``, ``full-resource`` (topic-based), ``resource`` (rest-hook payload)
    or ``none`` (ping, deleted)."""


_PING: Final = Notification("ping")
_DELETED: Final = Notification("deleted")


class NotificationError(InputError):
    """A notification the webhook must refuse, with the HTTP ``status`` and the OperationOutcome
    issue ``code`` to answer with."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def is_fhir_json(content_type: str | None) -> bool:
    """Whether a Content-Type header names FHIR JSON (``application/fhir+json`` and its aliases)."""
    if not content_type:
        return False
    return content_type.partition(";")[0].strip().lower() in FHIR_JSON_MEDIA_TYPES
