"""Topic-based notifications: the status (a backport ``Parameters`` or an R4B/R5
``SubscriptionStatus``) first in a notification Bundle, its events, and what the other entries
name or carry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fhirgen.fhir.notifications.model import (
    MAX_COUNT,
    TOPIC_KINDS,
    Notification,
    NotificationError,
    NotificationEvent,
)
from fhirgen.fhir.notifications.references import (
    _one_version_each,
    _relative,
    _resolver,
    _resource_ref,
    _resource_version,
    _versioned,
)

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
_MAX_DIGITS = 19  # integer64


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
