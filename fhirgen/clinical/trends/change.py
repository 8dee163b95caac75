"""Whether a change matters: the table's figure for a test in the series' own unit
(``meaningful_change``, any common spelling of the unit), whether a change reaches it, and where
a value lies against the reference range."""

from __future__ import annotations

import math
from collections.abc import Iterable

from fhirgen.clinical.trends.analytes import analyte
from fhirgen.clinical.trends.thresholds import MEANINGFUL_CHANGE, Threshold

# Unit spellings (lower-case, no spaces, µ as u) -> one form, so that "mEq/L", "°C", "K/uL",
# "pg/mL" find the UCUM figure. Only spellings of the same quantity and scale are merged.
_UNIT_FORMS = {
    "°c": "cel",
    "℃": "cel",
    "degc": "cel",
    "c": "cel",
    "°f": "[degf]",
    "℉": "[degf]",
    "degf": "[degf]",
    "f": "[degf]",
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "mmhg": "mm[hg]",
    "1/min": "/min",
    "bpm": "/min",
    "beats/min": "/min",
    "{beats}/min": "/min",
    "{beat}/min": "/min",
    "breaths/min": "/min",
    "{breaths}/min": "/min",
    "{breath}/min": "/min",
    "10*3/ul": "10*9/l",
    "10^3/ul": "10*9/l",
    "x10^3/ul": "10*9/l",
    "x10e3/ul": "10*9/l",
    "k/ul": "10*9/l",
    "thou/ul": "10*9/l",
    "10*3/mm3": "10*9/l",
    "/nl": "10*9/l",
    "10^9/l": "10*9/l",
    "x10^9/l": "10*9/l",
    "x10e9/l": "10*9/l",
    "pg/ml": "ng/l",
    "ng/ml": "ug/l",
    "mcg/l": "ug/l",
    "mcmol/l": "umol/l",
    "": "1",
    "{inr}": "1",
    "{ratio}": "1",
    "inr": "1",
    "ratio": "1",
    "[ph]": "1",
    "{ph}": "1",
    "ph": "1",
    "ml/min/1.73m2": "ml/min/{1.73_m2}",
    "ml/min/1.73m^2": "ml/min/{1.73_m2}",
    "ml/min/1.73m²": "ml/min/{1.73_m2}",
    "ml/min/{1.73m2}": "ml/min/{1.73_m2}",
    "ml/min/1.73sqm": "ml/min/{1.73_m2}",
    "ml/min/1.73.m2": "ml/min/{1.73_m2}",
    "ml/min/(1.73.m2)": "ml/min/{1.73_m2}",
}


def _unit_form(unit: str) -> str:
    form = "".join(str(unit or "").lower().replace("µ", "u").replace("μ", "u").split())
    return _UNIT_FORMS.get(form, form)


def _threshold_for(key: str, unit: str) -> Threshold | None:
    """The table's figure for analyte ``key`` in ``unit`` (any common spelling), or None."""
    form = _unit_form(unit)
    for threshold in MEANINGFUL_CHANGE.get(key, ()):
        if _unit_form(threshold.unit) == form:
            return threshold
    return None


def meaningful_change(
    codes: Iterable[str], name: str, unit: str, *, baseline: float | None = None
) -> float | None:
    """The smallest change that matters for this test, in the series' own ``unit``.

    None when the analyte or the unit is not in the table (no conversion is guessed). For a
    relative figure, pass the series' first value as ``baseline``: the result is then
    ``max(change, relative × |baseline|)``; without one it is the absolute floor ``change``.
    """
    key = analyte(codes, name)
    threshold = _threshold_for(key, unit) if key else None
    if threshold is None:
        return None
    if threshold.relative is not None and baseline is not None and math.isfinite(baseline):
        return max(threshold.change, threshold.relative * abs(baseline))
    return threshold.change


def _reaches(change: float, threshold: float | None) -> bool:
    """Whether ``change`` matters: reaches ``threshold``, or is above zero without one."""
    if not threshold:
        return change > 1e-12
    return change >= threshold - 1e-9 * max(1.0, threshold)


def _half(threshold: float | None) -> float | None:
    return threshold / 2 if threshold else threshold


def _side(value: float, low: float | None, high: float | None) -> str:
    if low is not None and value < low:
        return "low"
    if high is not None and value > high:
        return "high"
    return "normal"


def _distance(value: float, low: float | None, high: float | None) -> float:
    """How far ``value`` lies outside [low, high] (0 inside)."""
    if low is not None and value < low:
        return low - value
    if high is not None and value > high:
        return value - high
    return 0.0
