"""FHIR Subscription notifications, parsed from the raw HTTP request: pure functions on bytes.

Accepted shapes (``shared/FHIR.md``):

* R4 rest-hook with a payload: ``POST`` of the resource (Medplum; ``{}`` on delete) or ``PUT`` to
  ``…/<Type>/<id>`` (HAPI; ``DELETE`` on delete);
* R4 rest-hook without a payload: an empty ``POST`` (a ping: search the EHR for what changed);
* topic-based notifications: a ``Bundle`` whose first entry is the subscription status, a
  ``Parameters`` in a ``history`` Bundle (R4 Subscriptions Backport IG) or a ``SubscriptionStatus``
  in a ``subscription-notification`` Bundle (R4B/R5), with ``empty``, ``id-only`` or
  ``full-resource`` content.

Only references (``Type/id``) leave this module, never resource bodies: the worker re-reads the
EHR. Bad input raises :class:`NotificationError`, which carries the HTTP status and the
OperationOutcome issue code the webhook answers with; its message never echoes the body.

``model`` holds what a parsed notification is, ``parsing`` the entry point, ``rest_hook`` and
``topic`` the two families of shapes, ``references`` the reduction of references to ``Type/id``.
"""

from fhirgen.fhir.notifications.model import (
    FHIR_JSON_MEDIA_TYPES,
    MAX_COUNT,
    TOPIC_KINDS,
    Notification,
    NotificationError,
    NotificationEvent,
    is_fhir_json,
)
from fhirgen.fhir.notifications.parsing import parse_notification

__all__ = [
    "FHIR_JSON_MEDIA_TYPES",
    "MAX_COUNT",
    "TOPIC_KINDS",
    "Notification",
    "NotificationError",
    "NotificationEvent",
    "is_fhir_json",
    "parse_notification",
]
