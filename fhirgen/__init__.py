"""fhirgen: cited, AI-drafted discharge summaries and care plans, written back to the EHR as
preliminary FHIR resources for a clinician to review and sign.

The names below are the surface the CLI, workers and webhooks use; everything else is internal.
"""

from __future__ import annotations

__version__ = "0.1.0"

from fhirgen.config import Settings, load_settings
from fhirgen.errors import (
    ConfigError,
    FhirgenError,
    InputError,
    PermanentError,
    TransientError,
    VerificationError,
)
from fhirgen.fhir.record import PatientRecord
from fhirgen.generation import Generator, get_generator
from fhirgen.pipeline import StayDraft, draft_stay

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
