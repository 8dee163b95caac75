"""fhirgen: cited, AI-drafted discharge summaries and care plans, written back to the EHR as
preliminary FHIR resources for a clinician to review and sign.

The names below are the surface the CLI, workers and webhooks use; everything else is internal.
They load on first use, so ``import fhirgen.errors`` (the webhook, a small tool) does not pull
in the pipeline, pydantic's FHIR models or a generation backend.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("fhirgen")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# Public name -> the module that defines it.
_EXPORTS = {
    "ConfigError": "fhirgen.errors",
    "FhirgenError": "fhirgen.errors",
    "InputError": "fhirgen.errors",
    "PermanentError": "fhirgen.errors",
    "TransientError": "fhirgen.errors",
    "VerificationError": "fhirgen.errors",
    "Settings": "fhirgen.config",
    "load_settings": "fhirgen.config",
    "PatientRecord": "fhirgen.fhir.record",
    "Generator": "fhirgen.drafting.generation",
    "get_generator": "fhirgen.drafting.generation",
    "StayDraft": "fhirgen.drafting.pipeline",
    "draft_stay": "fhirgen.drafting.pipeline",
}

__all__ = [
    "ConfigError",
    "FhirgenError",
    "Generator",
    "InputError",
    "PatientRecord",
    "PermanentError",
    "Settings",
    "StayDraft",
    "TransientError",
    "VerificationError",
    "__version__",
    "draft_stay",
    "get_generator",
    "load_settings",
]

if TYPE_CHECKING:
    from fhirgen.config import Settings, load_settings
    from fhirgen.drafting.generation import Generator, get_generator
    from fhirgen.drafting.pipeline import StayDraft, draft_stay
    from fhirgen.errors import (
        ConfigError,
        FhirgenError,
        InputError,
        PermanentError,
        TransientError,
        VerificationError,
    )
    from fhirgen.fhir.record import PatientRecord


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fhirgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
