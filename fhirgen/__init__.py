"""fhirgen: cited, AI-drafted discharge summaries and care plans, written back to the EHR as
preliminary FHIR resources for a clinician to review and sign."""

from __future__ import annotations

__version__ = "0.1.0"
