"""FHIR OperationOutcome responses: every refusal says why, as FHIR, with the right status."""

from __future__ import annotations

import orjson
from flask import Response

FHIR_JSON = "application/fhir+json"


def outcome(status: int, code: str, diagnostics: str, severity: str = "error") -> Response:
    """A one-issue OperationOutcome with ``status``."""
    return Response(outcome_body(code, diagnostics, severity), status=status, mimetype=FHIR_JSON)


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
