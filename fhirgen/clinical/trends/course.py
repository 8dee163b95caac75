"""A series in words (``describe``): its direction, its last value against the range, and a
phrase built from the values' own ``shown`` texts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fhirgen.clinical.trends.change import _distance, _half, _reaches, _side


@dataclass(frozen=True)
class Point:
    """One value of a series, as the draft writes it."""

    value: float  # the number
    shown: str  # the value as the draft writes it, e.g. "9.3" or "<0.01" (digits never changed)
    when: str = ""  # the date as the draft writes it, e.g. "4 Mar 2026" ("" if unknown)


@dataclass(frozen=True)
class Course:
    """How a series went, and the words for it."""

    direction: str  # "rose" | "fell" | "stable" | "peaked" | "dipped" | "" (one value)
    state: str  # the last value against the reference range: "normal" | "high" | "low" | ""
    phrase: str  # e.g. "fell from 10 to 9.3 g/dL": lower-case, starting with the verb


def _num(point: Point, unit: str, with_unit: bool = False) -> str:
    if unit == "%":
        return f"{point.shown}%"
    return f"{point.shown} {unit}" if with_unit and unit else point.shown


def _on(point: Point) -> str:
    return f" on {point.when}" if point.when else ""


def _extreme(points: Sequence[Point], threshold: float, up: bool) -> tuple[int, float] | None:
    """The index of an intermediate peak (``up``) or low that stands out, and by how much.

    It stands out when it lies beyond one end of the series by the threshold and beyond the
    other by at least half of it: the extreme (a nadir before transfusion, a creatinine peak) is
    the finding, and a return of half the meaningful change is enough to call it a return.
    """
    values = [p.value for p in points]
    index = values.index(max(values) if up else min(values))
    if index in (0, len(values) - 1):
        return None
    sign = 1 if up else -1
    legs = sorted(sign * (values[index] - values[end]) for end in (0, -1))
    if _reaches(legs[1], threshold) and _reaches(legs[0], _half(threshold)):
        return index, legs[0]
    return None


def _range_words(
    first: float, last: float, low: float | None, high: float | None, threshold: float | None
) -> str:
    if low is None and high is None:
        return ""
    before, after = _side(first, low, high), _side(last, low, high)
    if after == "normal":
        return ", returning to normal" if before != "normal" else ""
    if before != after:
        return f", now {after}"
    closer = _distance(last, low, high) < _distance(first, low, high)
    if closer and _reaches(abs(last - first), threshold):
        return f", improved but still {after}"
    return f", still {after}"


def describe(
    points: Sequence[Point],
    unit: str,
    *,
    threshold: float | None,
    low: float | None = None,
    high: float | None = None,
) -> Course:
    """Direction, state and words for a series (``points`` in time order).

    ``unit`` is the unit as the draft writes it ("g/dL", "°C", "%"); ``threshold`` the
    smallest change that matters in that unit (``meaningful_change``), None if unknown, in
    which case the words never say "stable". ``low``/``high`` is the reference range.
    """
    points = [p for p in points if math.isfinite(p.value)]
    if not points:
        return Course("", "", "")
    first, last = points[0], points[-1]
    state = "" if low is None and high is None else _side(last.value, low, high)
    if len(points) == 1:
        return Course("", state, _num(first, unit, True) + _on(first))
    values = [p.value for p in points]
    lowest = points[values.index(min(values))]
    highest = points[values.index(max(values))]
    threshold = None if threshold is None else abs(threshold)
    outside = state if state in ("low", "high") else ""
    if highest.value == lowest.value:
        if threshold is None:
            words = f"unchanged at {_num(first, unit, True)}"
            return Course("stable", state, words + (f", still {outside}" if outside else ""))
        return Course("stable", state, _stable(f"{_num(first, unit, True)}", outside))
    if threshold is not None and not _reaches(highest.value - lowest.value, threshold):
        span = f"{_num(lowest, unit)} to {_num(highest, unit, True)}"
        return Course("stable", state, _stable(span, outside))

    change = last.value - first.value
    peak = dip = None
    if threshold is not None:
        peak, dip = _extreme(points, threshold, True), _extreme(points, threshold, False)
    if peak and dip:
        (i, _), (j, _) = sorted([peak, dip])
        up = i == peak[0]
        one, two = points[i], points[j]
        rise, fall = ("rose", "fell") if up else ("fell", "rose")
        top, bottom = ("a peak of", "a low of") if up else ("a low of", "a peak of")
        phrase = (
            f"{rise} from {_num(first, unit)} to {top} {_num(one, unit, True)}{_on(one)}, "
            f"{fall} to {bottom} {_num(two, unit, True)}{_on(two)}, "
            f"then {rise} to {_num(last, unit, True)}"
        )
        direction = "peaked" if peak[1] >= dip[1] else "dipped"
    elif peak or dip:
        up = peak is not None
        extreme = highest if up else lowest
        rise, fall, kind = ("rose", "fell", "a peak of") if up else ("fell", "rose", "a low of")
        phrase = (
            f"{rise} from {_num(first, unit)} to {kind} {_num(extreme, unit, True)}"
            f"{_on(extreme)}, then {fall} to {_num(last, unit, True)}"
        )
        direction = "peaked" if up else "dipped"
    elif _reaches(abs(change), threshold):
        direction = "rose" if change > 0 else "fell"
        phrase = f"{direction} from {_num(first, unit)} to {_num(last, unit, True)}"
    else:  # it moved by the threshold, but neither overall nor to a clear extreme
        phrase = (
            f"ranged from {_num(lowest, unit)} to {_num(highest, unit, True)}, "
            f"ending at {_num(last, unit, True)}"
        )
        if change:
            direction = "rose" if change > 0 else "fell"
        else:
            up = highest.value - first.value >= first.value - lowest.value
            direction = "peaked" if up else "dipped"
    phrase += _range_words(first.value, last.value, low, high, threshold)
    return Course(direction, state, phrase)


def _stable(span: str, outside: str) -> str:
    return f"stable but {outside} at {span}" if outside else f"stable at {span}"
