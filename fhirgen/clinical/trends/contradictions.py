"""Why a sentence's trend words ("stable", "rose", "returned to normal", "improved") disagree
with the numbers (``contradiction``), for the verifier and the evaluation."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from fhirgen.clinical.trends.change import _distance, _half, _reaches, _side


def _words(*phrases: str) -> re.Pattern[str]:
    forms = [re.escape(p).replace(r"\ ", r"\s+").replace(r"\-", r"[-\s]?") for p in phrases]
    return re.compile(rf"(?<![\w-])(?:{'|'.join(forms)})(?![\w-])", re.IGNORECASE)


_STABLE_WORDS = _words(*"stable|unchanged|unchanging|steady|no change".split("|"))
_RISE_WORDS = _words(
    *"rose|rising|risen|increased|increasing|up-trending|uptrending|trending up|climbed|climbing"
    "|went up".split("|")
)
_FALL_WORDS = _words(
    *"fell|falling|fallen|decreased|decreasing|declined|declining|down-trending|downtrending"
    "|trending down|dropped|dropping|went down".split("|")
)
_NORMAL_WORDS = _words(
    *"normalised|normalized|normalising|normalizing|returned to normal|returning to normal"
    "|back to normal|resolved|resolving".split("|")
)
_IMPROVED_WORDS = _words("improved", "improving")
_NEGATIONS = {"not", "no", "never", "without", "nor"}


def _says(pattern: re.Pattern[str], text: str) -> bool:
    """Whether ``text`` uses one of the words, not negated ("did not rise", "no longer")."""
    for match in pattern.finditer(text):
        clause = re.split(r"[.;:,!?()]", text[: match.start()])[-1]
        before = re.findall(r"[a-z']+", clause.lower())[-3:]
        if not any(w in _NEGATIONS or w.endswith("n't") for w in before):
            return True
    return False


def _reversal(values: Sequence[float], threshold: float | None) -> bool:
    """Whether the series has a peak or a low with a leg of ``threshold`` and one of half."""
    for j in range(1, len(values) - 1):
        for sign in (1, -1):
            legs = sorted(
                (
                    max(sign * (values[j] - v) for v in values[:j]),
                    max(sign * (values[j] - v) for v in values[j + 1 :]),
                )
            )
            if _reaches(legs[1], threshold) and _reaches(legs[0], _half(threshold)):
                return True
    return False


def contradiction(
    text: str,
    values: Sequence[float],
    threshold: float | None,
    low: float | None = None,
    high: float | None = None,
) -> str:
    """Why the trend words in ``text`` (a sentence about one series) contradict ``values``.

    "" when they do not, or when the sentence has no trend words. Values are in time order and
    ``threshold`` is the smallest change that matters (None: any change counts, and "stable"
    allows 10 % of the first value). A sentence saying both rose and fell must match a peak or
    a low in the values.
    """
    values = [float(v) for v in values if math.isfinite(v)]
    if not values or not text:
        return ""
    threshold = None if threshold is None else abs(threshold)
    first, last = values[0], values[-1]
    top, bottom = max(values), min(values)
    if _says(_STABLE_WORDS, text):
        if threshold is None and top - bottom > 0.1 * abs(first) + 1e-12:
            return f"says stable, but values run from {bottom:g} to {top:g} (over 10 % apart)"
        if threshold is not None and _reaches(top - bottom, threshold):
            return f"says stable, but values run from {bottom:g} to {top:g} (≥ {threshold:g} apart)"
    rise, fall = _says(_RISE_WORDS, text), _says(_FALL_WORDS, text)
    by = f" by {threshold:g}" if threshold else ""
    if rise and fall:
        if not _reversal(values, threshold):
            return "says it rose and fell, but the values have no peak or low"
    elif rise and not _reaches(top - first, threshold):
        return f"says it rose, but no value is above the first ({first:g}){by}"
    elif fall and not _reaches(first - bottom, threshold):
        return f"says it fell, but no value is below the first ({first:g}){by}"
    if low is None and high is None:
        return ""
    side = _side(last, low, high)
    if _says(_NORMAL_WORDS, text) and side != "normal":
        return f"says it returned to normal, but the last value ({last:g}) is {side}"
    if _says(_IMPROVED_WORDS, text) and _distance(last, low, high) > _distance(first, low, high):
        return f"says improved, but the last value ({last:g}) is further from the range"
    return ""
