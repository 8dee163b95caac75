"""``parse_notification``: the request's method, Content-Type and body checked, then handed to
the rest-hook or the topic-based reading; the refusal messages, which never echo the body."""

from __future__ import annotations

import re
from typing import Any

import orjson

from fhirgen.fhir.notifications.model import _PING, Notification, NotificationError, is_fhir_json
from fhirgen.fhir.notifications.rest_hook import _check_path, _deleted, _path, _rest_hook
from fhirgen.fhir.notifications.topic import _topic_notification
from fhirgen.fhir.resource_types import RESOURCE_TYPES

_METHODS = frozenset({"POST", "PUT", "DELETE"})
_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+\-]{1,40}/[A-Za-z0-9!#$&^_.+\-]{1,60}")
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"


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
