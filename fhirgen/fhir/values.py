"""Reading FHIR datatypes from plain JSON: codings, names, times and quantities.

Input resources stay plain dicts (validating each one with pydantic costs ~2 ms); these helpers
read the few datatypes the pipeline needs, tolerating what real EHR exports leave out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

_SEMANTIC_TAG = re.compile(
    r"\s*\((disorder|finding|procedure|situation|regime/therapy|morphologic abnormality|"
    r"observable entity|qualifier value|substance|product|medicinal product|event|"
    r"record artifact|body structure|physical object|environment|organism|person|"
    r"occupation|navigational concept|cell structure|assessment scale|attribute)\)\s*$",
    re.IGNORECASE,
)
_WS = re.compile(r"\s+")


def clean_name(text: str) -> str:
    """A display name as a person would write it: SNOMED semantic tag dropped, spaces tidied."""
    return _WS.sub(" ", _SEMANTIC_TAG.sub("", text)).strip()


def codings(concept: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The codings of a CodeableConcept (empty when absent)."""
    if not concept:
        return []
    found = concept.get("coding")
    return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []


def concept_names(concept: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Every name the record gives a concept: its text, then each coding's display (cleaned)."""
    names: list[str] = []
    if concept:
        text = concept.get("text")
        if isinstance(text, str) and text.strip():
            names.append(clean_name(text))
        for coding in codings(concept):
            display = coding.get("display")
            if isinstance(display, str) and display.strip():
                names.append(clean_name(display))
    return tuple(dict.fromkeys(n for n in names if n))


def concept_name(concept: Mapping[str, Any] | None, default: str = "") -> str:
    """The best human name for a concept: the text, else the first display, else a code."""
    names = concept_names(concept)
    if names:
        return names[0]
    for coding in codings(concept):
        if coding.get("code"):
            return str(coding["code"])
    return default


def has_code(concept: Mapping[str, Any] | None, system: str | None, *codes: str) -> bool:
    """True if a coding of ``concept`` has one of ``codes`` (in ``system`` when given)."""
    return any(
        c.get("code") in codes and (system is None or c.get("system") == system)
        for c in codings(concept)
    )


def concept_codes(concepts: Iterable[Mapping[str, Any]] | Mapping[str, Any] | None) -> set[str]:
    """The set of codes across one CodeableConcept or a list of them."""
    if concepts is None:
        return set()
    if isinstance(concepts, Mapping):
        concepts = [concepts]
    return {str(c["code"]) for concept in concepts for c in codings(concept) if c.get("code")}


def concept_key(concept: Mapping[str, Any] | None) -> str:
    """A stable grouping key: the first ``system|code``, else the lowercased name."""
    for coding in codings(concept):
        if coding.get("code"):
            return f"{coding.get('system', '')}|{coding['code']}"
    return concept_name(concept).lower()


_DATE_FORMS = (
    (re.compile(r"^\d{4}$"), "%Y"),
    (re.compile(r"^\d{4}-\d{2}$"), "%Y-%m"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d"),
)


def parse_time(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware datetime (UTC when no offset is given).

    Partial dates ("2026", "2026-03") mean their first moment. Unparseable text gives None.
    """
    if not isinstance(value, str) or not value:
        return None
    for pattern, fmt in _DATE_FORMS:
        if pattern.match(value):
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def period_bounds(resource: Mapping[str, Any], *names: str) -> tuple[str | None, str | None]:
    """The first (start, end) found among ``names``: a dateTime field or a Period field."""
    for name in names:
        value = resource.get(name)
        if isinstance(value, str):
            return value, value
        if isinstance(value, Mapping) and (value.get("start") or value.get("end")):
            return value.get("start"), value.get("end")
    return None, None


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_date(value: str | None) -> str:
    """A FHIR date/dateTime as '3 Apr 2016', read as written (no time-zone conversion)."""
    if not value:
        return "an unrecorded date"
    match = re.match(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", value)
    if not match:
        return value
    year, month, day = match.groups()
    if not month:
        return year
    if not day:
        return f"{_MONTHS[int(month) - 1]} {year}"
    return f"{int(day)} {_MONTHS[int(month) - 1]} {year}"


def format_number(value: Any) -> str:
    """A measured value with sensible precision: 72.4619 -> '72.5', 0.53776 -> '0.54'."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not number.is_finite():
        return str(value)
    magnitude = abs(number)
    places = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2
    text = f"{number:.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def quantity_parts(quantity: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(formatted value, unit) of a Quantity, or None when it has no value."""
    if not quantity or quantity.get("value") is None:
        return None
    unit = str(quantity.get("unit") or quantity.get("code") or "")
    if unit.startswith("{") and unit.endswith("}"):
        unit = unit[1:-1]  # a UCUM annotation such as {score}: show its words
    comparator = quantity.get("comparator") or ""
    return f"{comparator}{format_number(quantity['value'])}", unit


def format_quantity(quantity: Mapping[str, Any] | None) -> str:
    """A Quantity as '40 mg' (empty when it has no value)."""
    parts = quantity_parts(quantity)
    if not parts:
        return ""
    value, unit = parts
    if not unit or unit == "1":
        return value
    separator = "" if unit == "%" else " "
    return f"{value}{separator}{unit}"
