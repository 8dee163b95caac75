"""Validating what we write with the FHIR R4B models (never every input resource: too slow)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_LITERAL_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
_ENTITY_ROLES = frozenset({"derivation", "revision", "quotation", "source", "removal"})


def validation_errors(resource: Mapping[str, Any]) -> list[str]:
    """Problems ``fhir.resources.R4B`` finds in a resource (a Bundle's entries included)."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    errors: list[str] = []
    rtype = str(resource.get("resourceType"))
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError):
        return [f"unknown resourceType {rtype!r}"]
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            errors.append(f"{rtype}.{where}: {error['msg']}")
    return errors


def written_bundle_errors(bundle: Mapping[str, Any]) -> list[str]:
    """``validation_errors`` for a Bundle fhirgen rendered, at a fraction of the cost.

    A Provenance lists every chart resource a draft cites (hundreds for a long stay), each
    entity the same two-field shape with a ``Type/id`` reference. The models validate one
    entity per role; every reference is checked against the literal-reference pattern here.
    That keeps validating all we write inside the per-stay budget (see docs/BENCHMARKS.md).
    """
    errors: list[str] = []
    entries = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Provenance" and len(resource.get("entity") or []) > 1:
            by_role: dict[str, Any] = {}
            for entity in resource["entity"]:
                reference = str((entity.get("what") or {}).get("reference", ""))
                if not _LITERAL_REFERENCE.match(reference):
                    errors.append(f"Provenance.entity: {reference!r} is not a literal reference")
                if entity.get("role") not in _ENTITY_ROLES or set(entity) != {"role", "what"}:
                    errors.append(f"Provenance.entity: unexpected entity {entity!r}")
                by_role.setdefault(str(entity.get("role")), entity)
            entry = {**entry, "resource": {**resource, "entity": list(by_role.values())}}
        entries.append(entry)
    return errors + validation_errors({**bundle, "entry": entries})
