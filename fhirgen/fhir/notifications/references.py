"""References as they leave the parser: ``Type/id`` from relative, absolute, ``_history`` and
``urn:`` references, and the versions a notification names."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
# A relative or absolute reference: [base/]Type/id[/_history/vid]
_REFERENCE = re.compile(
    r"(?:[^#]*/)?([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?/?"
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
