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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from fhirgen.errors import InputError
from fhirgen.fhir.resource_types import RESOURCE_TYPES

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

FHIR_JSON_MEDIA_TYPES: Final = frozenset(
    {"application/fhir+json", "application/json", "application/json+fhir"}
)
"""Media types accepted for a notification body (parameters such as ``charset`` are ignored)."""

TOPIC_KINDS: Final = ("handshake", "heartbeat", "event-notification", "query-status", "query-event")
"""The notification types of topic-based subscriptions (R4 Backport IG, R4B, R5)."""

_METHODS = frozenset({"POST", "PUT", "DELETE"})
_KIND_BY_KEY = {kind.replace("-", ""): kind for kind in TOPIC_KINDS}
# Status fields we read, by name with "-" removed and lowercased (kebab-case and camelCase alike).
_FIELDS = {
    "subscription": "subscription",
    "topic": "topic",
    "status": "status",
    "type": "type",
    "eventssincesubscriptionstart": "since",
    "notificationevent": "events",
    "eventnumber": "number",
    "timestamp": "timestamp",
    "focus": "focus",
}
# The names as servers spell them, looked up first; "" marks a known name we do not read.
_FIELD_BY_NAME = {
    **_FIELDS,
    "events-since-subscription-start": "since",
    "eventsSinceSubscriptionStart": "since",
    "notification-event": "events",
    "notificationEvent": "events",
    "event-number": "number",
    "eventNumber": "number",
    "additional-context": "",
    "additionalContext": "",
    "error": "",
    "resourceType": "",
    "id": "",
    "meta": "",
}
_NOTIFICATION_BUNDLES = frozenset({"history", "subscription-notification"})
_BUNDLE_TYPES = frozenset(
    "document message transaction transaction-response batch batch-response history searchset "
    "collection subscription-notification".split()
)  # the only Bundle.type values a refusal names
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
# A relative or absolute reference: [base/]Type/id[/_history/vid]
_REFERENCE = re.compile(
    r"(?:[^#]*/)?([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?/?"
)
_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+\-]{1,40}/[A-Za-z0-9!#$&^_.+\-]{1,60}")
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
MAX_COUNT: Final = 2**31 - 1
"""The largest event number or event count accepted. FHIR's integer64 goes to 2^63 - 1, but the
store keeps them in integer columns (32-bit in PostgreSQL): a larger one is refused here, as
bad input, rather than failing the store's write."""
_MAX_DIGITS = 19  # integer64


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


def parse_notification(
    method: str,
    body: bytes,
    *,
    content_type: str | None,
    path_type: str | None = None,
    path_id: str | None = None,
    max_events: int | None = None,
) -> Notification:
    """Parse one notification request: its method, raw body, Content-Type and the optional
    ``<Type>/<id>`` that follows the endpoint in the URL (which a resource body must match).

    ``DELETE`` never reads its body. A topic-based notification with more than ``max_events``
    events is refused (413). Raises :class:`NotificationError`.
    """
    verb = method.upper()
    if verb not in _METHODS:
        shown = verb if verb.isalpha() and len(verb) <= 10 else "this method"
        raise NotificationError(
            f"{shown} is not accepted for notifications; use POST or PUT",
            status=405,
            code="not-supported",
        )
    path = _path(path_type, path_id)
    if verb == "DELETE":
        return _deleted(path)
    if verb == "PUT" and path is None:
        raise NotificationError("a PUT notification needs <Type>/<id> after the endpoint URL")
    if body[:3] == _BOM:
        body = body[3:]
    if not body or (body[0] in _WHITESPACE and not body.strip()):
        if verb == "PUT":
            raise NotificationError(
                "a PUT notification needs the resource as its body", code="required"
            )
        return Notification("ping", focus=(path,)) if path else _PING
    if not is_fhir_json(content_type):
        raise NotificationError(_media_type_message(content_type), status=415, code="not-supported")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NotificationError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise NotificationError(
            f"the body is a JSON {_json_kind(data)}, not a FHIR resource", code="structure"
        )
    if not data:
        return _deleted(path)  # Medplum posts {} when the resource was deleted
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or rtype not in RESOURCE_TYPES:
        what = "has no resourceType" if rtype is None else "has an unknown resourceType"
        raise NotificationError(f"the body is not a FHIR resource: it {what}", code="structure")
    if path is not None:
        _check_path(data, rtype, path)
    if rtype == "Bundle":
        return _topic_notification(data, max_events)
    if rtype in ("Parameters", "SubscriptionStatus"):
        raise NotificationError(
            f"a bare {rtype} is not a notification; it belongs first in a notification Bundle",
            status=422,
            code="not-supported",
        )
    return _rest_hook(data, rtype)


# ---------------- rest-hook ----------------


def _path(path_type: str | None, path_id: str | None) -> str | None:
    if path_type is None and path_id is None:
        return None
    if path_type is None or path_id is None:
        raise NotificationError("the URL must name both <Type> and <id> after the endpoint")
    if path_type not in RESOURCE_TYPES:
        raise NotificationError("the URL does not name a FHIR resource type after the endpoint")
    if not _ID.fullmatch(path_id):
        raise NotificationError("the URL does not end with a valid FHIR id")
    return f"{path_type}/{path_id}"


def _deleted(path: str | None) -> Notification:
    return Notification("deleted", focus=(path,)) if path else _DELETED


def _check_path(data: Mapping[str, Any], rtype: str, path: str) -> None:
    path_type, _, path_id = path.partition("/")
    if rtype != path_type:
        raise NotificationError(f"the body is a {rtype} resource but the URL names {path_type}")
    if data.get("id") != path_id:
        raise NotificationError("the body's id does not match the id in the URL")


def _rest_hook(data: Mapping[str, Any], rtype: str) -> Notification:
    rid = data.get("id")
    if rid is None:
        raise NotificationError(f"the {rtype} in the body has no id", status=422, code="required")
    if not isinstance(rid, str) or not _ID.fullmatch(rid):
        raise NotificationError(
            f"the {rtype} in the body has an invalid id", status=422, code="value"
        )
    meta = data.get("meta")
    version = meta.get("versionId") if isinstance(meta, dict) else None
    focus = f"{rtype}/{rid}"
    known = _resource_version(data)
    return Notification(
        "rest-hook",
        focus=(focus,),
        version=version if isinstance(version, str) and version else None,
        versions=((focus, known),) if known else (),
        content="resource",
    )


# ---------------- topic-based ----------------


def _topic_notification(bundle: Mapping[str, Any], max_events: int | None) -> Notification:
    btype = bundle.get("type")
    if not isinstance(btype, str) or btype not in _NOTIFICATION_BUNDLES:
        shown = f"a {btype}" if isinstance(btype, str) and btype in _BUNDLE_TYPES else "this"
        raise NotificationError(
            f"{shown} Bundle is not a subscription notification "
            "(expected type history or subscription-notification)",
            status=422,
            code="not-supported",
        )
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        entries = []
    first = entries[0] if entries and isinstance(entries[0], dict) else {}
    status = first.get("resource")
    if not isinstance(status, dict):
        status = {}
    stype = status.get("resourceType")
    if stype == "Parameters":
        fields = _parameters_fields(status)
    elif stype == "SubscriptionStatus":
        fields = _status_fields(status)
    else:
        raise NotificationError(
            "the Bundle is not a subscription notification: its first entry is not a "
            "Parameters or SubscriptionStatus",
            status=422,
            code="not-supported",
        )

    raw_kind = fields.get("type")
    if raw_kind is None:
        raise NotificationError("the notification status has no type", status=422, code="required")
    kind = (
        _KIND_BY_KEY.get(raw_kind.replace("-", "").lower()) if isinstance(raw_kind, str) else None
    )
    if kind is None:
        raise NotificationError(
            f"the notification type is not one of {', '.join(TOPIC_KINDS)}",
            status=422,
            code="code-invalid",
        )

    if max_events is not None and len(fields["events"]) > max_events:
        raise NotificationError(
            f"more than {max_events} events in one notification", status=413, code="too-costly"
        )
    resolve = _resolver(entries)
    events = tuple(_event(e, resolve) for e in fields["events"])
    focus = [e.focus for e in events if e.focus]
    versions = [found for e in fields["events"] if (found := _versioned(e.get("focus")))]
    carries_resources = False
    for entry in entries[1:]:
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        ref = None
        if isinstance(resource, dict):
            carries_resources = True
            ref = _resource_ref(resource)
            version = _resource_version(resource)
            if ref and version:
                versions.append((ref, version))
        if ref is None:
            request = entry.get("request")
            ref = _relative(entry.get("fullUrl")) or _relative(
                request.get("url") if isinstance(request, dict) else None
            )
        if ref is not None:
            focus.append(ref)
    if carries_resources:
        content = "full-resource"
    elif focus:
        content = "id-only"
    else:
        content = "empty"

    subscription = fields.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("reference")
    return Notification(
        kind,
        subscription=(_relative(subscription) or subscription)
        if isinstance(subscription, str) and subscription
        else None,
        topic=_text(fields.get("topic")),
        status=_text(fields.get("status")),
        events_since=_count(fields.get("since"), "events-since-subscription-start"),
        events=events,
        focus=tuple(dict.fromkeys(focus)),
        versions=_one_version_each(versions),
        content=content,
    )


def _field(name: str) -> str:
    """The status field a parameter, part or element name stands for ("" when not read)."""
    found = _FIELD_BY_NAME.get(name)
    return found if found is not None else _FIELDS.get(name.replace("-", "").lower(), "")


def _value(param: Mapping[str, Any]) -> Any:
    """The ``value[x]`` of a Parameters parameter or part."""
    for name, value in param.items():
        if name.startswith("value"):
            return value
    return None


def _parameters_fields(status: Mapping[str, Any]) -> dict[str, Any]:
    """The R4 backport status (Parameters) as ``{field: value}``; events as dicts."""
    fields: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    params = status.get("parameter")
    for param in params if isinstance(params, list) else ():
        name = param.get("name") if isinstance(param, dict) else None
        if not isinstance(name, str):
            continue
        key = _field(name)
        if key == "events":
            event: dict[str, Any] = {}
            parts = param.get("part")
            for part in parts if isinstance(parts, list) else ():
                part_name = part.get("name") if isinstance(part, dict) else None
                if isinstance(part_name, str):
                    part_key = _field(part_name)
                    if part_key and part_key not in event:
                        event[part_key] = _value(part)
            events.append(event)
        elif key and key not in fields:
            fields[key] = _value(param)
    fields["events"] = events
    return fields


def _status_fields(status: Mapping[str, Any]) -> dict[str, Any]:
    """The R4B/R5 SubscriptionStatus as ``{field: value}``; events as dicts."""
    fields = {key: value for name, value in status.items() if (key := _field(name))}
    events = fields.get("events")
    fields["events"] = [
        {key: value for name, value in event.items() if (key := _field(name))}
        for event in (events if isinstance(events, list) else ())
        if isinstance(event, dict)
    ]
    return fields


def _event(event: Mapping[str, Any], resolve: Callable[[str], str | None]) -> NotificationEvent:
    focus = event.get("focus")
    if isinstance(focus, dict):
        focus = focus.get("reference")
    return NotificationEvent(
        number=_count(event.get("number"), "event-number"),
        focus=resolve(focus) if isinstance(focus, str) else None,
        timestamp=_text(event.get("timestamp")),
    )


def _resolver(entries: Sequence[Any]) -> Callable[[str], str | None]:
    """Reduce a reference to ``Type/id``, resolving ``urn:`` ones through the entries' fullUrls."""
    urns: dict[str, str] = {}
    built: list[bool] = []

    def resolve(reference: str) -> str | None:
        if not reference.startswith("urn:"):
            return _relative(reference)
        if not built:
            built.append(True)
            for entry in entries:
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    ref = _resource_ref(entry["resource"])
                    full_url = entry.get("fullUrl")
                    if ref and isinstance(full_url, str):
                        urns[full_url] = ref
        return urns.get(reference)

    return resolve


def _resource_ref(resource: Mapping[str, Any]) -> str | None:
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if (
        isinstance(rtype, str)
        and isinstance(rid, str)
        and _TYPE.fullmatch(rtype)
        and _ID.fullmatch(rid)
    ):
        return f"{rtype}/{rid}"
    return None


def _resource_version(resource: Mapping[str, Any]) -> str | None:
    meta = resource.get("meta")
    version = meta.get("versionId") if isinstance(meta, dict) else None
    return version if isinstance(version, str) and _ID.fullmatch(version) else None


def _versioned(reference: Any) -> tuple[str, str] | None:
    """``(Type/id, vid)`` from a ``[base/]Type/id/_history/vid`` reference, else None."""
    if isinstance(reference, dict):
        reference = reference.get("reference")
    if not isinstance(reference, str):
        return None
    match = _REFERENCE.fullmatch(reference)
    return (f"{match[1]}/{match[2]}", match[3]) if match and match[3] else None


def _one_version_each(versions: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The pairs of resources named at one version only (two versions: which one is unclear)."""
    seen: dict[str, set[str]] = {}
    for ref, version in versions:
        seen.setdefault(ref, set()).add(version)
    return tuple((ref, next(iter(found))) for ref, found in seen.items() if len(found) == 1)


def _relative(reference: Any) -> str | None:
    """``Type/id`` from a relative or absolute reference (``_history`` dropped), else None."""
    if not isinstance(reference, str):
        return None
    match = _REFERENCE.fullmatch(reference)
    return f"{match[1]}/{match[2]}" if match else None


def _count(value: Any, what: str) -> int | None:
    """A whole number from 0 to :data:`MAX_COUNT`, sent as a JSON integer or a string
    (integer64 is a string)."""
    if value is None:
        return None
    number = None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        number = value
    elif isinstance(value, str):
        digits = value.strip()
        if digits.isascii() and digits.isdigit():
            # Parsed only as far as needed to tell it is too large (no 4,000-digit ints).
            number = int(digits) if len(digits) <= _MAX_DIGITS else MAX_COUNT + 1
    if number is None:
        raise NotificationError(
            f"{what} is not a non-negative whole number", status=422, code="value"
        )
    if number > MAX_COUNT:
        raise NotificationError(f"{what} is over {MAX_COUNT}", status=422, code="value")
    return number


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# ---------------- messages ----------------


def _media_type_message(content_type: str | None) -> str:
    accepted = "send application/fhir+json"
    if not content_type or not content_type.strip():
        return f"a notification body needs a Content-Type; {accepted}"
    media_type = content_type.partition(";")[0].strip()
    shown = media_type if _TOKEN.fullmatch(media_type) else "this media type"
    return f"{shown} is not accepted; {accepted}"


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
