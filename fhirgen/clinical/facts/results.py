"""Facts of the results: one per laboratory test or vital sign, its course in words, and how
an Observation's value is read (also for results still pending)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fhirgen.clinical.facts.builder import FactBuilder
from fhirgen.clinical.facts.model import FactKind, Value
from fhirgen.clinical.facts.phrasing import date_span, one_line
from fhirgen.clinical.trends import Point, describe, meaningful_change
from fhirgen.clinical.wording import humanize, in_sentence, quantity_text, test_name, unit_text
from fhirgen.fhir.record import Resource, resource_key
from fhirgen.fhir.values import (
    concept_codes,
    concept_key,
    concept_name,
    concept_names,
    format_date,
    format_number,
    period_bounds,
    quantity_parts,
)

_INTERPRETATION_WORDS = {
    "H": "high",
    "HU": "very high",
    "HH": "critically high",
    "L": "low",
    "LU": "very low",
    "LL": "critically low",
    "A": "abnormal",
    "AA": "critically abnormal",
    "POS": "positive",
    "DET": "detected",
    "R": "resistant",
    ">": "above the measurable range",
    "<": "below the measurable range",
}
_NORMAL_INTERPRETATIONS = {"N", "NEG", "ND", "S"}
_BLOOD_PRESSURE = ("8480-6", "8462-4")  # systolic, diastolic


def results(builder: FactBuilder) -> None:
    ctx = builder.ctx
    groups: dict[str, list[Resource]] = {}
    for obs in ctx.observations:
        groups.setdefault(concept_key(obs.get("code")), []).append(obs)
    ordered = sorted(groups, key=lambda k: concept_name(groups[k][0].get("code")).lower())
    names = [_short_name(groups[k][0]) for k in ordered]
    for key, name in zip(ordered, names, strict=True):
        if names.count(name) > 1:
            # Two tests of one name (serum and point-of-care glucose): say which is which.
            name = f"{name} ({_specimen(groups[key][0])})" if _specimen(groups[key][0]) else name
        _result_fact(builder, groups[key], name)
    if not any(f.kind is FactKind.LAB for f in builder.facts):
        builder.nothing("labs", "No laboratory results are recorded for this stay.")


def _short_name(obs: Resource) -> str:
    code = obs.get("code")
    return test_name(sorted(concept_codes(code)), concept_names(code)) or "unnamed result"


def _result_fact(builder: FactBuilder, group: Sequence[Resource], name: str) -> None:
    """One fact per test: its course in words (first, extreme, last, with dates)."""
    first = group[0]
    codes = sorted(concept_codes(first.get("code")))
    long_names = concept_names(first.get("code"))
    vital = "vital-signs" in concept_codes(first.get("category") or [])
    readings = [r for r in (read_value(o) for o in group) if r is not None]
    if not readings:
        return
    flags = list(dict.fromkeys(r.flag for r in readings if r.flag))
    numeric = [r for r in readings if r.number is not None]
    unit = numeric[0].unit if numeric else ""
    low, high = _reference_range(group)
    threshold = (
        meaningful_change(codes, name, unit, baseline=numeric[0].number) if numeric else None
    )
    head, tail = readings[0], readings[-1]
    values = [Value("result", r.value, unit_text(r.unit), r.when) for r in readings]
    lead = name[:1].upper() + name[1:]
    if len(numeric) >= 2:
        points = [Point(r.number, r.value, format_date(r.when)) for r in numeric]  # type: ignore[arg-type]
        course = describe(points, unit_text(unit), threshold=threshold, low=low, high=high)
        text = (
            f"{lead} {course.phrase} ({len(readings)} results, {date_span(head.when, tail.when)})"
        )
        high_r = max(numeric, key=lambda r: r.number or 0)
        low_r = min(numeric, key=lambda r: r.number or 0)
        values += [
            Value("highest", high_r.value, unit_text(high_r.unit), high_r.when),
            Value("lowest", low_r.value, unit_text(low_r.unit), low_r.when),
        ]
        direction, state, phrase = course.direction, course.state, course.phrase
    else:
        text = f"{lead} {tail.display} on {format_date(tail.when)}"
        if len(readings) > 1:
            text = (
                f"{lead} {head.display} on {format_date(head.when)}, "
                f"{tail.display} on {format_date(tail.when)}"
            )
        direction, state, phrase = "", "", ""
    values += [Value("first", head.value, unit_text(head.unit), head.when)]
    values += [Value("last", tail.value, unit_text(tail.unit), tail.when)]
    builder.add(
        FactKind.VITAL if vital else FactKind.LAB,
        text,
        [resource_key(o) for o in group],
        names=[name, *long_names],
        values=values,
        date=head.when,
        abnormal=", ".join(flags),
        first_flag=head.flag,
        first=head.display,
        last_flag=tail.flag,
        last=tail.display,
        last_date=tail.when or "",
        marked="yes" if _marked(numeric, flags, low, high, threshold) else "",
        threshold=format_number(threshold) if threshold is not None else "",
        low=format_number(low) if low is not None else "",
        high=format_number(high) if high is not None else "",
        direction=direction,
        state=state,
        course=phrase,
        codes=",".join(codes),
    )


@dataclass(frozen=True)
class Reading:
    value: str
    unit: str
    number: float | None
    flag: str
    when: str | None

    @property
    def display(self) -> str:
        shown = quantity_text(self.value, self.unit)
        return f"{shown} ({self.flag})" if self.flag else shown


def read_value(obs: Resource) -> Reading | None:
    when, _ = period_bounds(obs, "effectiveDateTime", "effectivePeriod", "effectiveInstant")
    when = when or obs.get("issued")
    flag = _flag(obs)
    quantity = obs.get("valueQuantity")
    if isinstance(quantity, Mapping) and quantity.get("value") is not None:
        parts = quantity_parts(quantity)
        assert parts is not None
        return Reading(parts[0], parts[1], float(quantity["value"]), flag, when)
    components = [c for c in obs.get("component") or [] if isinstance(c, Mapping)]
    if components:
        by_code = {next(iter(concept_codes(c.get("code"))), ""): c for c in components}
        systolic, diastolic = (by_code.get(code) for code in _BLOOD_PRESSURE)
        if systolic and diastolic:
            high = (systolic.get("valueQuantity") or {}).get("value")
            low = (diastolic.get("valueQuantity") or {}).get("value")
            if high is not None and low is not None:
                unit = (systolic.get("valueQuantity") or {}).get("unit") or "mm[Hg]"
                value = f"{format_number(high)}/{format_number(low)}"
                return Reading(value, str(unit), float(high), flag, when)
        shown = "; ".join(
            f"{test_name(concept_codes(c.get('code')), concept_names(c.get('code')))} "
            f"{quantity_text(*(quantity_parts(c.get('valueQuantity')) or ('', '')))}".strip()
            for c in components
            if quantity_parts(c.get("valueQuantity"))
        )
        if shown:
            return Reading(shown, "", None, flag, when)
    for field in ("valueCodeableConcept",):
        if obs.get(field):
            return Reading(in_sentence(humanize(concept_name(obs[field]))), "", None, flag, when)
    for field in ("valueString", "valueBoolean", "valueInteger"):
        if obs.get(field) is not None:
            return Reading(one_line(str(obs[field])), "", None, flag, when)
    return None


def _flag(obs: Resource) -> str:
    for concept in obs.get("interpretation") or []:
        for code in sorted(concept_codes(concept)):
            if code in _INTERPRETATION_WORDS:
                return _INTERPRETATION_WORDS[code]
            if code in _NORMAL_INTERPRETATIONS:
                return ""
    quantity = obs.get("valueQuantity") or {}
    value = quantity.get("value") if isinstance(quantity, Mapping) else None
    if value is None:
        return ""
    for reference in obs.get("referenceRange") or []:
        low = ((reference or {}).get("low") or {}).get("value")
        high = ((reference or {}).get("high") or {}).get("value")
        if high is not None and value > high:
            return "high"
        if low is not None and value < low:
            return "low"
    return ""


def _specimen(obs: Resource) -> str:
    """The specimen and method words of a LOINC long name: '… in Capillary blood by Glucometer'."""
    for name in concept_names(obs.get("code")):
        if " in " in name:
            tail = name.split(" in ", 1)[1]
            return " ".join(re.sub(r"[\[\]{}]", "", tail).split()).lower()
    return ""


def _reference_range(observations: Iterable[Resource]) -> tuple[float | None, float | None]:
    """The first reference range the series gives (low, high), either end may be missing."""
    for obs in observations:
        for reference in obs.get("referenceRange") or []:
            low = ((reference or {}).get("low") or {}).get("value")
            high = ((reference or {}).get("high") or {}).get("value")
            low = float(low) if isinstance(low, int | float) else None
            high = float(high) if isinstance(high, int | float) else None
            if low is not None or high is not None:
                return low, high
    return None, None


def _marked(
    numeric: Sequence[Reading],
    flags: Sequence[str],
    low: float | None,
    high: float | None,
    threshold: float | None,
) -> bool:
    """Markedly abnormal: flagged critical, flagged with no range to judge by, or beyond the
    range by more than twice the change that matters (a fifth of the limit where no such figure
    is known). Mildly abnormal values that no problem claims are summarised in one line."""
    if any(f.startswith(("critically", "very")) for f in flags):
        return True
    if flags and low is None and high is None:
        return True  # flagged, with no range to measure by: show the values
    for reading in numeric:
        value = reading.number or 0.0
        for limit, beyond in ((high, value - (high or 0)), (low, (low or 0) - value)):
            if limit is None or beyond <= 0:
                continue
            margin = 2 * threshold if threshold else abs(limit) / 5
            if beyond > margin:
                return True
    return False
