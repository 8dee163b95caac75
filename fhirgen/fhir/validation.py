"""Validating what we write with the FHIR R4B models (never every input resource: too slow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
