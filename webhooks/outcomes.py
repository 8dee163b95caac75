"""FHIR OperationOutcome responses: every refusal says why, as FHIR, with the right status."""

from __future__ import annotations

import orjson

FHIR_JSON = "application/fhir+json"


def outcome_body(code: str, diagnostics: str, severity: str = "error") -> bytes:
    """A one-issue OperationOutcome, as JSON."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
    return orjson.dumps(body)


ACCEPTED = orjson.dumps(
    {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": "accepted"}],
    }
)
