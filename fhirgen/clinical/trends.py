"""Which change in a measurement matters, and words for a series that say so honestly.

A series is "stable" only when it moves less than the smallest change that matters for that
analyte in that unit (``MEANINGFUL_CHANGE``: KDIGO's 0.3 mg/dL for creatinine, 1 g/dL for
hemoglobin, 1 °C for temperature, ...), never by a generic rule. A change counts when it
*reaches* the figure (KDIGO defines AKI as a rise of at least 0.3 mg/dL), so "stable" means
max − min below it. Where no figure is known (an analyte or a unit not in the table) the words
never say "stable": they give the first and last values plainly.

Some figures are relative (natriuretic peptides, high-sensitivity troponin, eGFR): a
``Threshold`` may carry ``relative`` (0.3 for 30 %), and ``meaningful_change(...,
baseline=first value)`` then returns ``max(change, relative × |baseline|)``, the absolute
``change`` being the floor below which a relative change is noise.

``describe`` words a series for a draft ("fell from 10.0 to a low of 7.9 g/dL on 12 May 2026,
then rose to 8.8 g/dL, still low") from the values' own ``shown`` texts, so that every number in
the sentence is one the cited facts hold. ``contradiction`` says why a sentence's trend words
("stable", "rose", "returned to normal", "improved") disagree with the numbers, for the verifier
and the evaluation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    """One value of a series, as the draft writes it."""

    value: float  # the number
    shown: str  # the value as the draft writes it, e.g. "9.3" or "<0.01" (digits never changed)
    when: str = ""  # the date as the draft writes it, e.g. "4 Mar 2026" ("" if unknown)


@dataclass(frozen=True)
class Threshold:
    """The smallest change that matters for one analyte in one unit.

    ``relative`` (optional, e.g. 0.3 for 30 %) makes the figure scale with the series: the
    threshold is then ``max(change, relative × |first value|)``, ``change`` being the floor.
    """

    change: float  # smallest change that matters, in `unit` (the floor when `relative` is set)
    unit: str  # the UCUM unit the figure is in, e.g. "g/dL"
    source: str  # where the figure comes from (short citation)
    relative: float | None = None  # a fraction of the first value, for analytes read in percent


_T = Threshold
_CONVENTION = "clinical convention"
_HB = "clinical convention (one red-cell unit raises Hb by about 1 g/dL)"
_NEWS2_TEMP = "clinical convention (NEWS2 scores temperature in 1 °C bands)"
_SPO2 = "clinical convention; oximeter accuracy is ±4 % (ISO 80601-2-61, Arms ≤ 4 %)"
_WEIGHT = "ESC 2021 heart failure guideline (weight gain > 2 kg in 3 days)"
_KDIGO_AKI = "KDIGO 2012 AKI definition (rise ≥ 0.3 mg/dL in 48 h)"
_SODIUM = "clinical convention; 5 mmol/L is the first correction target (Spasovski 2014)"
_GLUCOSE = "clinical convention (1 mmol/L; ISO 15197:2013 meters are ±15 mg/dL under 100)"
_LACTATE = "clinical convention (Surviving Sepsis cut-offs 2 and 4 mmol/L)"
_TNI = "ESC 2020 NSTE-ACS 0h/1h (hs-cTnI Architect Δ ≥ 6 ng/L); 20 % (Fourth UDMI 2018)"
_TNT = "ESC 2020 NSTE-ACS 0h/1h (hs-cTnT Elecsys Δ ≥ 5 ng/L); 20 % (Fourth UDMI 2018)"
_NTPROBNP = "clinical convention (30 % change in heart failure); floor: ESC 2021 125 pg/mL"
_BNP = "clinical convention (30 % change in heart failure); floor: ESC 2021 35 pg/mL"
_PCT = "clinical convention (ProHOSP algorithm steps 0.1/0.25/0.5 µg/L)"
_INR = "clinical convention (half the 2–3 warfarin target range)"
_HR = "clinical convention (NEWS2 pulse bands are 20/min wide above 90)"
_RR = "clinical convention (NEWS2 band 21–24 /min)"
_SBP = "clinical convention (20 mmHg, as in the orthostatic hypotension consensus, 2011)"
_DBP = "clinical convention (10 mmHg, as in the orthostatic hypotension consensus, 2011)"
_EGFR = "KDIGO 2012 CKD (≥ 25 % decline); floor 5 mL/min/1.73 m² (KDIGO rapid decline)"

MEANINGFUL_CHANGE: dict[str, tuple[Threshold, ...]] = {
    "hemoglobin": (_T(1.0, "g/dL", _HB), _T(10.0, "g/L", _HB), _T(0.62, "mmol/L", _HB)),
    "wbc": (_T(2.0, "10*9/L", _CONVENTION), _T(2.0, "10*3/uL", _CONVENTION)),
    "platelets": (_T(50.0, "10*9/L", _CONVENTION), _T(50.0, "10*3/uL", _CONVENTION)),
    "sodium": (_T(5.0, "mmol/L", _SODIUM), _T(5.0, "meq/L", _SODIUM)),
    "potassium": (_T(0.8, "mmol/L", _CONVENTION), _T(0.8, "meq/L", _CONVENTION)),
    "chloride": (_T(4.0, "mmol/L", _CONVENTION), _T(4.0, "meq/L", _CONVENTION)),
    "bicarbonate": (_T(4.0, "mmol/L", _CONVENTION), _T(4.0, "meq/L", _CONVENTION)),
    "anion_gap": (_T(4.0, "mmol/L", _CONVENTION), _T(4.0, "meq/L", _CONVENTION)),
    "bun": (_T(5.0, "mg/dL", _CONVENTION), _T(1.8, "mmol/L", _CONVENTION)),
    "urea": (_T(1.8, "mmol/L", "clinical convention (= 5 mg/dL urea nitrogen)"),),
    "creatinine": (_T(0.3, "mg/dL", _KDIGO_AKI), _T(26.5, "umol/L", _KDIGO_AKI)),
    "glucose": (_T(18.0, "mg/dL", _GLUCOSE), _T(1.0, "mmol/L", _GLUCOSE)),
    "calcium": (
        _T(0.5, "mg/dL", _CONVENTION),
        _T(0.125, "mmol/L", _CONVENTION),
        _T(0.25, "meq/L", _CONVENTION),
    ),
    "magnesium": (
        _T(0.49, "mg/dL", _CONVENTION),
        _T(0.2, "mmol/L", _CONVENTION),
        _T(0.4, "meq/L", _CONVENTION),
    ),
    "lactate": (_T(1.0, "mmol/L", _LACTATE), _T(9.0, "mg/dL", _LACTATE)),
    "troponin_i_hs": (_T(6.0, "ng/L", _TNI, relative=0.2),),
    "troponin_t_hs": (_T(5.0, "ng/L", _TNT, relative=0.2),),
    "nt_probnp": (_T(125.0, "pg/mL", _NTPROBNP, relative=0.3),),
    "bnp": (_T(35.0, "pg/mL", _BNP, relative=0.3),),
    "crp": (_T(10.0, "mg/L", _CONVENTION), _T(1.0, "mg/dL", _CONVENTION)),
    "procalcitonin": (_T(0.25, "ng/mL", _PCT),),
    "inr": (_T(0.5, "{INR}", _INR),),
    "ph": (_T(0.05, "[pH]", _CONVENTION),),
    "pco2": (_T(5.0, "mm[Hg]", _CONVENTION), _T(0.67, "kPa", _CONVENTION)),
    "egfr": (_T(5.0, "mL/min/{1.73_m2}", _EGFR, relative=0.25),),
    "albumin": (_T(0.5, "g/dL", _CONVENTION), _T(5.0, "g/L", _CONVENTION)),
    "bilirubin": (_T(0.5, "mg/dL", _CONVENTION), _T(8.55, "umol/L", _CONVENTION)),
    "heart_rate": (_T(20.0, "/min", _HR),),
    "respiratory_rate": (_T(4.0, "/min", _RR),),
    "systolic": (_T(20.0, "mm[Hg]", _SBP),),
    "diastolic": (_T(10.0, "mm[Hg]", _DBP),),
    "temperature": (_T(1.0, "Cel", _NEWS2_TEMP), _T(1.8, "[degF]", _NEWS2_TEMP)),
    "spo2": (_T(4.0, "%", _SPO2),),
    "weight": (_T(2.0, "kg", _WEIGHT), _T(4.4, "[lb_av]", _WEIGHT), _T(2000.0, "g", _WEIGHT)),
}
"""Analyte key -> the smallest change that matters, one figure per unit. Conventional
(not high-sensitivity) troponin has a key in ``ANALYTE_CODES`` but no figure: its assays differ
too much for one absolute number, so its series are worded without "stable"."""

ANALYTE_CODES: dict[str, str] = {
    "718-7": "hemoglobin",
    "6690-2": "wbc",
    "26464-8": "wbc",
    "777-3": "platelets",
    "26515-7": "platelets",
    "2951-2": "sodium",
    "2947-0": "sodium",
    "2823-3": "potassium",
    "6298-4": "potassium",
    "2075-0": "chloride",
    "1963-8": "bicarbonate",
    "2028-9": "bicarbonate",
    "3094-0": "bun",
    "6299-2": "bun",
    "2160-0": "creatinine",
    "38483-4": "creatinine",
    "2345-7": "glucose",
    "2339-0": "glucose",
    "17861-6": "calcium",
    "19123-9": "magnesium",
    "2601-3": "magnesium",
    "2524-7": "lactate",
    "32693-4": "lactate",
    "10839-9": "troponin_i",
    "89579-7": "troponin_i_hs",
    "6598-7": "troponin_t",
    "67151-1": "troponin_t_hs",
    "33762-6": "nt_probnp",
    "30934-4": "bnp",
    "42637-9": "bnp",
    "1988-5": "crp",
    "33959-8": "procalcitonin",
    "6301-6": "inr",
    "34714-6": "inr",
    "33037-3": "anion_gap",
    "41276-7": "anion_gap",
    "2744-1": "ph",
    "2746-6": "ph",
    "2019-8": "pco2",
    "2021-4": "pco2",
    "33914-3": "egfr",
    "48642-3": "egfr",
    "48643-1": "egfr",
    "62238-1": "egfr",
    "98979-8": "egfr",
    "1751-7": "albumin",
    "1975-2": "bilirubin",
    "8867-4": "heart_rate",
    "9279-1": "respiratory_rate",
    "8310-5": "temperature",
    "8331-1": "temperature",
    "2708-6": "spo2",
    "59408-5": "spo2",
    "8480-6": "systolic",
    "8462-4": "diastolic",
    "29463-7": "weight",
    "3141-9": "weight",
}
"""LOINC code -> analyte key."""

# Names: the first rule whose words match and whose exclusions do not gives the key. Tests on
# other specimens (urine sodium, CSF glucose) have other figures and get none.
_OTHER_SPECIMEN = re.compile(
    r"\b(?:urine|urinary|csf|cerebrospinal|stool|fecal|faecal|feces|faeces|fluid|peritoneal"
    r"|pleural|synovial|ascitic|dialysate|amniotic)\b|\b24\s*-?\s*h(?:ou)?r?s?\b"
)
_NAME_RULES: tuple[tuple[str, str, str], ...] = (
    ("nt_probnp", r"nt-?\s*pro-?\s*bnp|n-?terminal|natriuretic peptide\.?b prohormone", ""),
    ("bnp", r"\bbnp\b|natriuretic peptide", ""),
    ("troponin_i_hs", r"troponin\W*i\b.*(?:high[\s-]*sensitiv|\bhs\b)|\bhs-?c?tni\b", ""),
    ("troponin_t_hs", r"troponin\W*t\b.*(?:high[\s-]*sensitiv|\bhs\b)|\bhs-?c?tnt\b", ""),
    ("troponin_i", r"troponin\W*i\b|\bc?tni\b", ""),
    ("troponin_t", r"troponin\W*t\b|\bc?tnt\b", ""),
    ("procalcitonin", r"procalcitonin|\bpct\b", ""),
    ("crp", r"c[\s-]*reactive protein|\b(?:hs-?)?crp\b", ""),
    ("egfr", r"\begfr\b|glomerular filtration", ""),
    ("anion_gap", r"anion gap", ""),
    ("pco2", r"\bpa?co2\b|carbon dioxide\W+partial pressure|partial pressure of carbon", ""),
    ("bicarbonate", r"bicarbonate|\bhco3|carbon dioxide|\bt?co2\b", ""),
    ("ph", r"\bph\b", ""),
    ("spo2", r"\bs[pa]o2\b|oxygen saturation|\bo2 sat", ""),
    ("inr", r"\binr\b|international normali[sz]ed ratio", ""),
    (
        "hemoglobin",
        r"\b(?:hemoglobin|haemoglobin|hgb|hb)\b",
        r"a1c|glyc|corpuscular|\bmchc?\b|carboxy|meth?a?emo|oxyh|fetal|\bfree\b|plasma hemo",
    ),
    ("wbc", r"\bwbc\b|\bleu[kc]ocytes?\b|white (?:blood )?cells?|white count", r"esterase"),
    (
        "platelets",
        r"\bplatelets?\b|\bplt\b|thrombocytes?",
        r"mean|distribution|\bmpv\b|poor|aggregat|antibod|large|crit|function",
    ),
    ("lactate", r"\blact(?:ate|ic acid)\b", r"dehydrogenase|\bldh?\b"),
    ("creatinine", r"\bcreatinine\b", r"ratio|clearance|kinase"),
    ("bun", r"\bbun\b|urea nitrogen", r"ratio"),
    ("urea", r"\burea\b", r"ratio|nitrogen"),
    ("potassium", r"potassium|^k\+?$", ""),
    ("sodium", r"\bsodium\b|^na\+?$", r"bicarbonate"),
    ("chloride", r"chloride|^cl-?$", ""),
    ("calcium", r"\bcalcium\b|^ca$", r"ioni[sz]ed|\bfree\b|\bca\+\+|score"),
    ("magnesium", r"magnesium|^mg$", ""),
    ("glucose", r"\bglucose\b|\bglu\b|blood sugar", r"tolerance|phosphate|g6pd|challenge"),
    ("albumin", r"\balbumin\b", r"ratio|globulin"),
    ("bilirubin", r"bilirubin", r"direct|conjugated|neonatal|delta|glucuronid"),
    ("temperature", r"temperature|\btemp\b", ""),
    (
        "weight",
        r"\bweight\b|\bwt\b",
        r"birth|molecular|\bdry\b|ideal|predicted|percentile|loss|gain|change|lean|\bfor\b",
    ),
    ("heart_rate", r"heart rate|pulse rate|\bpulse\b|\bhr\b", r"pressure|oximetry"),
    ("respiratory_rate", r"respiratory rate|respiration rate|breathing rate|\brr\b", ""),
    ("systolic", r"systolic|\bsbp\b", ""),
    ("diastolic", r"diastolic|\bdbp\b", ""),
)
_COMPILED_RULES = tuple(
    (key, re.compile(words), re.compile(exclude) if exclude else None)
    for key, words, exclude in _NAME_RULES
)


def analyte(codes: Iterable[str], name: str) -> str | None:
    """The analyte key of a test: from its LOINC codes (``ANALYTE_CODES``), else its name.

    Codes may be bare ("718-7") or ``system|code``. Names of tests on other specimens (urine,
    CSF, ...) and of derived measures (HbA1c, MCH, ratios, clearances) get None.
    """
    for code in sorted(str(c).rsplit("|", 1)[-1].strip() for c in codes):
        if code in ANALYTE_CODES:
            return ANALYTE_CODES[code]
    text = " ".join(str(name or "").lower().split())
    if not text or _OTHER_SPECIMEN.search(text):
        return None
    for key, words, exclude in _COMPILED_RULES:
        if words.search(text) and not (exclude and exclude.search(text)):
            return key
    return None


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


@dataclass(frozen=True)
class Course:
    """How a series went, and the words for it."""

    direction: str  # "rose" | "fell" | "stable" | "peaked" | "dipped" | "" (one value)
    state: str  # the last value against the reference range: "normal" | "high" | "low" | ""
    phrase: str  # e.g. "fell from 10 to 9.3 g/dL": lower-case, starting with the verb


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
