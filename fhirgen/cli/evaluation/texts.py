"""The texts checked, read back from the Bundle: a DocumentReference's plain text by LOINC type,
the CarePlan's narrative, and a document's body without its header and source list."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from typing import Any

from fhirgen.fhir.values import LOINC, has_code

# The patient-instructions DocumentReference's type (LOINC "Discharge instructions").
PATIENT_INSTRUCTIONS_LOINC = "8653-8"
# Lines of the plain-text header every document starts with (title, "Preliminary…", "Stay…").
HEADER_LINES = 3
_SOURCES = re.compile(r"^sources$", re.IGNORECASE | re.MULTILINE)


def document_text(bundle: Mapping[str, Any], loinc: str) -> str:
    """The plain text of the Bundle's DocumentReference of this LOINC type ('' if none)."""
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "DocumentReference":
            continue
        if not has_code(resource.get("type"), LOINC, loinc):
            continue
        for content in resource.get("content") or []:
            attachment = content.get("attachment") or {}
            if str(attachment.get("contentType", "")).startswith("text/plain"):
                return base64.b64decode(attachment.get("data", "")).decode("utf-8")
    return ""


def care_plan_text(bundle: Mapping[str, Any]) -> str:
    """The CarePlan's narrative as plain text, one line per heading or paragraph ('' if none)."""
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "CarePlan":
            div = str((resource.get("text") or {}).get("div", ""))
            lines = re.sub(r"<[^>]+>", "", re.sub(r"</(?:p|h\d|li|div)>", "\n", div))
            return html.unescape(lines)
    return ""


def document_body(text: str) -> str:
    """A document's text without its header lines and its source list."""
    head = _SOURCES.split(text, maxsplit=1)[0]
    return "\n".join(head.split("\n")[HEADER_LINES:]).strip("\n")
