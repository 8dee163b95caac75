"""The smallest change that matters, per analyte and unit (``MEANINGFUL_CHANGE``), with the
source of each figure."""

from __future__ import annotations

from dataclasses import dataclass


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
