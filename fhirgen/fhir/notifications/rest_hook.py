"""R4 rest-hook notifications: the ``<Type>/<id>`` in the URL, deletes, and a resource body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhirgen.fhir.notifications.model import _DELETED, Notification, NotificationError
from fhirgen.fhir.notifications.references import _ID, _resource_version
from fhirgen.fhir.resource_types import RESOURCE_TYPES


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
