"""Trend words from clinically meaningful change (fhirgen.clinical.trends)."""

from __future__ import annotations

import random
import re

import pytest

from fhirgen.clinical.trends import (
    ANALYTE_CODES,
    MEANINGFUL_CHANGE,
    Course,
    Point,
    Threshold,
    analyte,
    contradiction,
    describe,
    meaningful_change,
)


def series(*shown: str, dates: dict[int, str] | None = None) -> list[Point]:
    """Points from their shown texts (the value is the text read as a number)."""
    dates = dates or {}
    return [Point(float(s.lstrip("<>")), s, dates.get(i, "")) for i, s in enumerate(shown)]


def said_stable(phrase: str) -> bool:
    return re.search(r"(?<![\w-])(stable|unchanged|steady)(?![\w-])", phrase) is not None


# The table


REQUIRED = {
    ("hemoglobin", "g/dL"): 1.0,
    ("hemoglobin", "g/L"): 10.0,
    ("hemoglobin", "mmol/L"): 0.62,
    ("temperature", "Cel"): 1.0,
    ("temperature", "[degF]"): 1.8,
    ("spo2", "%"): 4.0,
    ("weight", "kg"): 2.0,
    ("weight", "[lb_av]"): 4.4,
    ("creatinine", "mg/dL"): 0.3,
    ("creatinine", "umol/L"): 26.5,
    ("potassium", "mmol/L"): 0.8,
    ("potassium", "meq/L"): 0.8,
    ("sodium", "mmol/L"): 5.0,
}


@pytest.mark.parametrize(("key", "unit"), sorted(REQUIRED))
def test_required_figures(key: str, unit: str) -> None:
    figures = {t.unit: t.change for t in MEANINGFUL_CHANGE[key]}
    assert figures[unit] == pytest.approx(REQUIRED[key, unit])


def test_every_family_has_a_sourced_figure() -> None:
    families = (
        "hemoglobin wbc platelets sodium potassium chloride bicarbonate bun urea creatinine "
        "glucose calcium magnesium lactate troponin_i_hs troponin_t_hs nt_probnp bnp crp "
        "procalcitonin inr ph pco2 egfr albumin bilirubin heart_rate respiratory_rate systolic "
        "diastolic temperature spo2 weight"
    ).split()
    for key in families:
        thresholds = MEANINGFUL_CHANGE[key]
        assert thresholds, key
        for t in thresholds:
            assert isinstance(t, Threshold)
            assert t.change > 0 and t.unit and len(t.source) > 10, (key, t)
            assert t.relative is None or 0 < t.relative < 1, (key, t)
    assert "KDIGO 2012" in MEANINGFUL_CHANGE["creatinine"][0].source
    assert "NEWS2" in MEANINGFUL_CHANGE["temperature"][0].source
    # Conventional troponin has a key but no figure (assays differ too much).
    assert "troponin_i" not in MEANINGFUL_CHANGE and "troponin_t" not in MEANINGFUL_CHANGE
    # Every key a code maps to is a family we know (with or without a figure).
    assert set(ANALYTE_CODES.values()) <= set(MEANINGFUL_CHANGE) | {"troponin_i", "troponin_t"}


CODES = {
    "hemoglobin": "718-7",
    "wbc": "6690-2 26464-8",
    "platelets": "777-3 26515-7",
    "sodium": "2951-2 2947-0",
    "potassium": "2823-3 6298-4",
    "chloride": "2075-0",
    "bicarbonate": "1963-8 2028-9",
    "bun": "3094-0 6299-2",
    "creatinine": "2160-0 38483-4",
    "glucose": "2345-7 2339-0",
    "calcium": "17861-6",
    "magnesium": "19123-9 2601-3",
    "lactate": "2524-7 32693-4",
    "troponin_i": "10839-9",
    "troponin_i_hs": "89579-7",
    "troponin_t": "6598-7",
    "troponin_t_hs": "67151-1",
    "nt_probnp": "33762-6",
    "bnp": "30934-4 42637-9",
    "crp": "1988-5",
    "procalcitonin": "33959-8",
    "inr": "6301-6 34714-6",
    "anion_gap": "33037-3 41276-7",
    "ph": "2744-1 2746-6",
    "pco2": "2019-8 2021-4",
    "egfr": "33914-3 48642-3 48643-1 62238-1 98979-8",
    "albumin": "1751-7",
    "bilirubin": "1975-2",
    "heart_rate": "8867-4",
    "respiratory_rate": "9279-1",
    "temperature": "8310-5 8331-1",
    "spo2": "2708-6 59408-5",
    "systolic": "8480-6",
    "diastolic": "8462-4",
    "weight": "29463-7 3141-9",
}


@pytest.mark.parametrize(
    ("code", "key"), [(c, k) for k, codes in CODES.items() for c in codes.split()]
)
def test_loinc_codes(code: str, key: str) -> None:
    assert ANALYTE_CODES[code] == key
    assert analyte([code], "") == key
    assert analyte(["local-123", f"http://loinc.org|{code}"], "something else") == key


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Hemoglobin [Mass/volume] in Blood", "hemoglobin"),
        ("Haemoglobin", "hemoglobin"),
        ("HGB", "hemoglobin"),
        ("Hemoglobin A1c/Hemoglobin.total in Blood", None),
        ("MCH [Entitic mass] by Automated count", None),
        ("Mean corpuscular hemoglobin concentration", None),
        ("Leukocytes [#/volume] in Blood by Automated count", "wbc"),
        ("Platelets [#/volume] in Blood by Automated count", "platelets"),
        ("Platelet mean volume [Entitic volume] in Blood", None),
        ("INR in Platelet poor plasma by Coagulation assay", "inr"),
        ("Sodium [Moles/volume] in Serum or Plasma", "sodium"),
        ("Sodium [Moles/volume] in Urine", None),
        ("Potassium", "potassium"),
        ("Carbon dioxide, total [Moles/volume] in Serum or Plasma", "bicarbonate"),
        ("Carbon dioxide [Partial pressure] in Arterial blood", "pco2"),
        ("pH of Arterial blood", "ph"),
        ("Urea nitrogen [Mass/volume] in Serum or Plasma", "bun"),
        ("Urea [Moles/volume] in Serum or Plasma", "urea"),
        ("Urea nitrogen/Creatinine [Mass Ratio] in Serum or Plasma", None),
        ("Creatinine [Mass/volume] in Serum or Plasma", "creatinine"),
        ("Creatinine renal clearance", None),
        ("Glomerular filtration rate/1.73 sq M.predicted by Creatinine-based formula", "egfr"),
        ("Glucose [Mass/volume] in Blood", "glucose"),
        ("Glucose [Mass/volume] in Cerebral spinal fluid", None),
        ("Calcium [Mass/volume] in Serum or Plasma", "calcium"),
        ("Calcium.ionized [Moles/volume] in Blood", None),
        ("Lactate [Moles/volume] in Blood", "lactate"),
        ("Lactate dehydrogenase [Enzymatic activity/volume]", None),
        ("Troponin I.cardiac [Mass/volume] in Serum or Plasma", "troponin_i"),
        ("Troponin T.cardiac [Mass/volume] by High sensitivity method", "troponin_t_hs"),
        ("NT-proBNP", "nt_probnp"),
        ("Natriuretic peptide.B prohormone N-Terminal [Mass/volume]", "nt_probnp"),
        ("Natriuretic peptide B [Mass/volume] in Blood", "bnp"),
        ("C reactive protein [Mass/volume] in Serum or Plasma", "crp"),
        ("Procalcitonin", "procalcitonin"),
        ("Albumin [Mass/volume] in Serum or Plasma", "albumin"),
        ("Albumin/Creatinine [Mass Ratio] in Urine", None),
        ("Bilirubin.total [Mass/volume] in Serum or Plasma", "bilirubin"),
        ("Bilirubin.direct [Mass/volume] in Serum or Plasma", None),
        ("Body temperature", "temperature"),
        ("Body weight", "weight"),
        ("Birth weight", None),
        ("Oxygen saturation in Arterial blood by Pulse oximetry", "spo2"),
        ("SpO2", "spo2"),
        ("Heart rate", "heart_rate"),
        ("Respiratory rate", "respiratory_rate"),
        ("Systolic blood pressure", "systolic"),
        ("Diastolic blood pressure", "diastolic"),
        ("Anion gap 4 in Serum or Plasma", "anion_gap"),
        ("Magnesium [Mass/volume] in Serum or Plasma", "magnesium"),
        ("Alanine aminotransferase [Enzymatic activity/volume]", None),
        ("", None),
    ],
)
def test_names(name: str, key: str | None) -> None:
    assert analyte([], name) == key
    assert analyte(["no-such-code"], name) == key


# Hemoglobin


def test_hemoglobin_gi_bleed_dips_with_its_low_and_date() -> None:
    threshold = meaningful_change(["718-7"], "Hemoglobin", "g/dL")
    assert threshold == 1.0
    points = series("10.0", "8.9", "7.9", "8.8", dates={2: "12 May 2026"})
    course = describe(points, "g/dL", threshold=threshold)
    assert course == Course(
        "dipped", "", "fell from 10.0 to a low of 7.9 g/dL on 12 May 2026, then rose to 8.8 g/dL"
    )
    with_range = describe(points, "g/dL", threshold=threshold, low=12.0, high=16.0)
    assert with_range.direction == "dipped" and with_range.state == "low"
    assert with_range.phrase.endswith("then rose to 8.8 g/dL, still low")
    assert not said_stable(with_range.phrase) and "improved" not in with_range.phrase


def test_hemoglobin_within_threshold_but_low_never_plain_stable() -> None:
    points = series("10", "9.3")
    plain = describe(points, "g/dL", threshold=1.0)
    assert plain == Course("stable", "", "stable at 9.3 to 10 g/dL")
    low = describe(points, "g/dL", threshold=1.0, low=12.0, high=16.0)
    assert low == Course("stable", "low", "stable but low at 9.3 to 10 g/dL")


def test_hemoglobin_units() -> None:
    assert meaningful_change(["718-7"], "", "g/L") == 10.0
    assert meaningful_change(["718-7"], "", "mmol/L") == pytest.approx(0.62)
    assert meaningful_change(["718-7"], "", "mg/dL") is None  # no factor guessed
    assert describe(series("100", "93"), "g/L", threshold=10.0).direction == "stable"
    assert describe(series("100", "89"), "g/L", threshold=10.0).direction == "fell"


# Vital signs


def test_temperature_fell_returning_to_normal() -> None:
    threshold = meaningful_change(["8310-5"], "Body temperature", "Cel")
    assert threshold == 1.0
    assert meaningful_change([], "Body temperature", "°C") == 1.0
    assert meaningful_change([], "Temperature", "[degF]") == 1.8
    assert meaningful_change([], "Temperature", "°F") == 1.8
    course = describe(series("38.9", "37.4", "36.9"), "°C", threshold=1.0, low=36.1, high=37.2)
    assert course == Course("fell", "normal", "fell from 38.9 to 36.9 °C, returning to normal")
    # The same change in °F is 3.6, which passes 1.8 but would not pass 1.8 × 1.8.
    fahrenheit = describe(series("102.0", "98.4"), "°F", threshold=1.8)
    assert fahrenheit.direction == "fell"
    assert describe(series("99.0", "100.5"), "°F", threshold=1.8).direction == "stable"


def test_spo2_rose() -> None:
    threshold = meaningful_change(["59408-5"], "", "%")
    assert threshold == 4.0
    course = describe(series("88", "91", "95"), "%", threshold=threshold)
    assert course == Course("rose", "", "rose from 88% to 95%")
    ranged = describe(series("88", "95"), "%", threshold=threshold, low=94.0, high=100.0)
    assert ranged.phrase == "rose from 88% to 95%, returning to normal"
    assert describe(series("95", "93"), "%", threshold=threshold).phrase == "stable at 93% to 95%"


def test_weight_fell() -> None:
    threshold = meaningful_change(["29463-7"], "Body weight", "kg")
    assert threshold == 2.0
    assert meaningful_change([], "Body weight", "[lb_av]") == 4.4
    assert meaningful_change([], "Body weight", "lb") == 4.4
    course = describe(series("88.4", "87.9", "86.8", "85.2", "84.5"), "kg", threshold=threshold)
    assert course == Course("fell", "", "fell from 88.4 to 84.5 kg")
    assert describe(series("88.4", "87.0"), "kg", threshold=threshold).direction == "stable"


def test_pulse_and_pressure() -> None:
    assert meaningful_change(["8867-4"], "", "/min") == 20.0
    assert meaningful_change([], "Heart rate", "{beats}/min") == 20.0
    assert meaningful_change(["9279-1"], "", "/min") == 4.0
    assert meaningful_change(["8480-6"], "", "mm[Hg]") == 20.0
    assert meaningful_change(["8462-4"], "", "mmHg") == 10.0
    course = describe(series("118", "96", "112"), "/min", threshold=20.0)
    assert course.direction == "dipped" and "a low of 96 /min" in course.phrase


# Kidney


def test_creatinine_peaked() -> None:
    threshold = meaningful_change(["2160-0"], "Creatinine", "mg/dL")
    assert threshold == 0.3
    points = series("1.3", "1.8", "1.2", dates={0: "2 Mar 2026", 1: "4 Mar 2026"})
    course = describe(points, "mg/dL", threshold=threshold, low=0.7, high=1.3)
    assert course.direction == "peaked" and course.state == "normal"
    assert (
        course.phrase
        == "rose from 1.3 to a peak of 1.8 mg/dL on 4 Mar 2026, then fell to 1.2 mg/dL"
    )


def test_creatinine_micromol_and_kdigo_boundary() -> None:
    assert meaningful_change(["2160-0"], "", "umol/L") == 26.5
    assert meaningful_change(["2160-0"], "", "µmol/L") == 26.5
    assert describe(series("88", "110"), "µmol/L", threshold=26.5).direction == "stable"
    assert describe(series("88", "115"), "µmol/L", threshold=26.5).direction == "rose"
    # KDIGO: a rise of at least 0.3 mg/dL is AKI, so exactly 0.3 counts (not "stable").
    assert (
        describe(series("1.0", "1.3"), "mg/dL", threshold=0.3).phrase
        == "rose from 1.0 to 1.3 mg/dL"
    )


def test_egfr_relative() -> None:
    assert meaningful_change(["62238-1"], "", "mL/min/{1.73_m2}", baseline=80) == pytest.approx(20)
    assert meaningful_change(["62238-1"], "", "mL/min/1.73m2", baseline=12) == 5.0
    assert meaningful_change(["62238-1"], "", "mL/min/{1.73_m2}") == 5.0


def test_urea_and_bun() -> None:
    assert meaningful_change(["3094-0"], "", "mg/dL") == 5.0
    assert meaningful_change([], "Urea", "mmol/L") == 1.8
    assert meaningful_change([], "Urea", "mg/dL") is None  # urea or urea nitrogen? no guess


# Electrolytes


def test_potassium_rose_returning_to_normal() -> None:
    threshold = meaningful_change(["2823-3"], "Potassium", "mmol/L")
    assert threshold == 0.8
    assert meaningful_change(["2823-3"], "", "mEq/L") == 0.8
    course = describe(series("3.3", "4.3"), "mmol/L", threshold=threshold, low=3.5, high=5.1)
    assert course == Course("rose", "normal", "rose from 3.3 to 4.3 mmol/L, returning to normal")
    over = describe(series("3.0", "5.6"), "mmol/L", threshold=threshold, low=3.5, high=5.1)
    assert over.phrase == "rose from 3.0 to 5.6 mmol/L, now high" and over.state == "high"


def test_sodium_stable_without_normal_claims() -> None:
    threshold = meaningful_change(["2951-2"], "Sodium", "mmol/L")
    assert threshold == 5.0
    points = series("133", "135", "137")
    plain = describe(points, "mmol/L", threshold=threshold)
    assert plain == Course("stable", "", "stable at 133 to 137 mmol/L")
    ranged = describe(points, "mmol/L", threshold=threshold, low=135.0, high=145.0)
    assert ranged == Course("stable", "normal", "stable at 133 to 137 mmol/L")
    assert "normal" not in ranged.phrase
    low = describe(series("128", "131"), "mmol/L", threshold=threshold, low=135.0, high=145.0)
    assert low.phrase == "stable but low at 128 to 131 mmol/L"
    assert describe(series("4.1", "4.1"), "mmol/L", threshold=0.8).phrase == "stable at 4.1 mmol/L"


def test_improved_only_when_closer_to_the_range() -> None:
    closer = describe(series("125", "131"), "mmol/L", threshold=5.0, low=135.0, high=145.0)
    assert closer.phrase == "rose from 125 to 131 mmol/L, improved but still low"
    further = describe(series("131", "125"), "mmol/L", threshold=5.0, low=135.0, high=145.0)
    assert further.phrase == "fell from 131 to 125 mmol/L, still low"
    assert "improved" not in further.phrase
    dropped = describe(series("140", "129"), "mmol/L", threshold=5.0, low=135.0, high=145.0)
    assert dropped.phrase == "fell from 140 to 129 mmol/L, now low"


def test_calcium_magnesium_bicarbonate_chloride_anion_gap() -> None:
    assert meaningful_change(["17861-6"], "", "mg/dL") == 0.5
    assert meaningful_change(["17861-6"], "", "mmol/L") == pytest.approx(0.5 / 4.008, rel=0.01)
    mg_dl = meaningful_change(["19123-9"], "", "mg/dL")
    mmol = meaningful_change(["2601-3"], "", "mmol/L")
    assert mg_dl == pytest.approx(mmol * 2.431, rel=0.02)
    assert meaningful_change(["1963-8"], "", "mmol/L") == 4.0
    assert meaningful_change(["2075-0"], "", "mEq/L") == 4.0
    assert meaningful_change(["33037-3"], "", "mmol/L") == 4.0


# Glucose


def test_glucose_units_differ_by_18() -> None:
    mg_dl = meaningful_change(["2345-7"], "Glucose", "mg/dL")
    mmol = meaningful_change(["2345-7"], "Glucose", "mmol/L")
    assert mg_dl is not None and mmol is not None
    assert mg_dl == pytest.approx(18 * mmol)
    assert describe(series("110", "125"), "mg/dL", threshold=mg_dl).direction == "stable"
    assert describe(series("6.1", "7.3"), "mmol/L", threshold=mmol).direction == "rose"


# Blood count


def test_wbc_and_platelets() -> None:
    assert meaningful_change(["6690-2"], "", "10*3/uL") == 2.0
    assert meaningful_change(["6690-2"], "", "10*9/L") == 2.0
    assert meaningful_change([], "WBC", "K/uL") == 2.0
    assert meaningful_change(["777-3"], "", "10*3/uL") == 50.0
    course = describe(series("240", "150", "90"), "10*3/uL", threshold=50.0, low=150.0, high=400.0)
    assert course == Course("fell", "low", "fell from 240 to 90 10*3/uL, now low")


# Cardiac markers


def test_natriuretic_peptides_relative() -> None:
    assert meaningful_change(["33762-6"], "", "pg/mL", baseline=4000.0) == pytest.approx(1200)
    assert meaningful_change(["33762-6"], "", "ng/L", baseline=100.0) == 125.0
    assert meaningful_change(["33762-6"], "", "pg/mL") == 125.0
    assert meaningful_change(["30934-4"], "", "pg/mL", baseline=1000.0) == pytest.approx(300)
    assert meaningful_change(["30934-4"], "", "pg/mL", baseline=50.0) == 35.0
    threshold = meaningful_change(["33762-6"], "", "pg/mL", baseline=4000.0)
    assert describe(series("4000", "3100"), "pg/mL", threshold=threshold).direction == "stable"
    assert describe(series("4000", "2500"), "pg/mL", threshold=threshold).direction == "fell"


def test_troponin() -> None:
    assert meaningful_change(["67151-1"], "", "ng/L", baseline=10.0) == 5.0
    assert meaningful_change(["67151-1"], "", "ng/L", baseline=200.0) == pytest.approx(40)
    assert meaningful_change(["89579-7"], "", "pg/mL", baseline=10.0) == 6.0
    assert meaningful_change(["10839-9"], "", "ng/mL") is None  # conventional: no figure
    assert meaningful_change(["6598-7"], "", "ng/mL") is None
    course = describe(series("0.02", "0.03"), "ng/mL", threshold=None)
    assert course.phrase == "rose from 0.02 to 0.03 ng/mL"


# Inflammation, lactate, coagulation, gases, liver


def test_other_analytes() -> None:
    assert meaningful_change(["1988-5"], "", "mg/L") == 10.0
    assert meaningful_change(["33959-8"], "", "ng/mL") == 0.25
    assert meaningful_change(["33959-8"], "", "ug/L") == 0.25
    assert meaningful_change(["2524-7"], "", "mmol/L") == 1.0
    assert meaningful_change(["6301-6"], "", "{INR}") == 0.5
    assert meaningful_change(["6301-6"], "", "") == 0.5
    assert meaningful_change(["2744-1"], "", "[pH]") == 0.05
    assert meaningful_change(["2019-8"], "", "mm[Hg]") == 5.0
    assert meaningful_change(["2019-8"], "", "kPa") == pytest.approx(5 / 7.5, rel=0.01)
    assert meaningful_change(["1751-7"], "", "g/L") == 10 * meaningful_change(
        ["1751-7"], "", "g/dL"
    )
    assert meaningful_change(["1975-2"], "", "umol/L") == pytest.approx(
        17.1 * meaningful_change(["1975-2"], "", "mg/dL")
    )
    lactate = describe(series("4.8", "2.1", "1.4"), "mmol/L", threshold=1.0, high=2.0)
    assert lactate == Course("fell", "normal", "fell from 4.8 to 1.4 mmol/L, returning to normal")
    ph = describe(series("7.21", "7.38"), "", threshold=0.05, low=7.35, high=7.45)
    assert ph.phrase == "rose from 7.21 to 7.38, returning to normal"


# Unknown analytes and units


def test_unknown_analyte_never_stable() -> None:
    assert analyte([], "Alanine aminotransferase") is None
    assert meaningful_change(["1742-6"], "Alanine aminotransferase", "U/L") is None
    assert meaningful_change(["2951-2"], "Sodium", "mg/dL") is None  # unit not in the table
    close = describe(series("12", "14"), "U/L", threshold=None)
    assert close == Course("rose", "", "rose from 12 to 14 U/L")
    assert (
        describe(series("14", "12.5"), "U/L", threshold=None).phrase == "fell from 14 to 12.5 U/L"
    )
    assert describe(series("20", "20"), "U/L", threshold=None).phrase == "unchanged at 20 U/L"
    back = describe(series("12", "30", "12"), "U/L", threshold=None)
    assert back.phrase == "ranged from 12 to 30 U/L, ending at 12 U/L"
    rng = random.Random(7)
    for _ in range(200):
        values = [str(rng.choice([10, 10.5, 11, 12, 20])) for _ in range(rng.randint(2, 5))]
        assert not said_stable(
            describe(series(*values), "U/L", threshold=None).phrase.replace("unchanged", "")
        ), values


def test_one_value_and_shown_text_kept() -> None:
    assert describe([], "g/dL", threshold=1.0) == Course("", "", "")
    one = describe([Point(0.01, "<0.01", "3 Mar 2026")], "ng/mL", threshold=None, high=0.04)
    assert one == Course("", "normal", "<0.01 ng/mL on 3 Mar 2026")
    assert describe(series("7.90"), "g/dL", threshold=1.0).phrase == "7.90 g/dL"
    assert (
        describe(series("<0.01", "0.5"), "ng/mL", threshold=0.25).phrase
        == "rose from <0.01 to 0.5 ng/mL"
    )


def test_both_extremes_told_in_order() -> None:
    points = series("10", "14", "6", "10", dates={1: "2 Mar", 2: "4 Mar"})
    course = describe(points, "g/dL", threshold=1.0)
    assert course.phrase == (
        "rose from 10 to a peak of 14 g/dL on 2 Mar, fell to a low of 6 g/dL on 4 Mar, "
        "then rose to 10 g/dL"
    )


def test_small_return_is_not_a_dip() -> None:
    # The low stands 0.3 below the last value (less than half of 1 g/dL): a fall, not a dip.
    course = describe(series("10", "7.9", "8.2"), "g/dL", threshold=1.0)
    assert course == Course("fell", "", "fell from 10 to 8.2 g/dL")
    wobble = describe(series("10", "11.1", "10.7"), "g/dL", threshold=1.0)
    assert wobble.phrase == "ranged from 10 to 11.1 g/dL, ending at 10.7 g/dL"
    back = describe(series("10", "11.1", "10.5"), "g/dL", threshold=1.0)  # a return of 0.6
    assert back.direction == "peaked" and "a peak of 11.1 g/dL" in back.phrase


# contradiction


def test_contradiction_catches_wrong_trend_words() -> None:
    weight = [88.4, 87.9, 86.8, 85.2, 84.5]
    assert contradiction("Weight: first 88.4 kg, last 84.5 kg (5 results; stable)", weight, 2.0)
    assert contradiction("Weight remained Stable.", weight, 2.0)
    assert contradiction("Weight unchanged", [70.0, 78.0], None)  # more than 10 % apart
    assert contradiction("Weight rose to 84.5 kg", weight, 2.0)
    assert contradiction("Weight was up-trending", weight, 2.0)
    assert contradiction("Creatinine fell", [1.2, 1.3, 1.4], 0.3)
    high = [8.9, 7.1, 6.2]
    assert contradiction("Potassium returned to normal", high, 0.8, 3.5, 5.1)
    assert contradiction("Potassium normalised", high, 0.8, 3.5, 5.1)
    assert contradiction("The hyperkalaemia resolved", high, 0.8, 3.5, 5.1)
    assert contradiction("Sodium improved", [131, 125], 5.0, 135, 145)
    assert contradiction("Hemoglobin rose then fell", [10, 9, 8], 1.0)


def test_contradiction_accepts_right_words_and_no_words() -> None:
    weight = [88.4, 87.9, 86.8, 85.2, 84.5]
    assert contradiction("Weight fell from 88.4 to 84.5 kg.", weight, 2.0) == ""
    assert contradiction("Weight was 84.5 kg at discharge.", weight, 2.0) == ""
    assert contradiction("Admitted with unstable angina.", weight, 2.0) == ""
    assert contradiction("Weight has not increased.", weight, 2.0) == ""
    assert contradiction("Weight is no longer rising.", weight, 2.0) == ""
    assert contradiction("Weight hasn't increased.", weight, 2.0) == ""
    assert contradiction("Sodium was stable at 133 to 137 mmol/L.", [133, 137], 5.0) == ""
    assert contradiction("Potassium returned to normal", [3.3, 4.3], 0.8, 3.5, 5.1) == ""
    assert contradiction("Sodium improved", [125, 131], 5.0, 135, 145) == ""
    assert contradiction("Enzyme unchanged", [100, 105], None) == ""


def test_describe_never_contradicts_itself() -> None:
    rng = random.Random(2026)
    for _ in range(2000):
        values = [round(rng.uniform(2.5, 6.5), 1) for _ in range(rng.randint(1, 6))]
        threshold = rng.choice([None, 0.0, 0.5, 0.8, 1.5])
        low, high = rng.choice([(None, None), (3.5, 5.1), (3.5, None), (None, 5.1)])
        points = [Point(v, f"{v:g}", f"{i + 1} Mar") for i, v in enumerate(values)]
        course = describe(points, "mmol/L", threshold=threshold, low=low, high=high)
        assert course.direction in {"rose", "fell", "stable", "peaked", "dipped", ""}
        assert course.phrase and (course.phrase[0].islower() or len(values) == 1)
        assert contradiction(course.phrase, values, threshold, low, high) == "", (values, course)
        for number in re.findall(r"\d+(?:\.\d+)?", course.phrase.replace("Mar", "")):
            assert number in {p.shown for p in points} | {p.when.split()[0] for p in points}
        if said_stable(course.phrase) and threshold is not None:
            assert max(values) - min(values) < threshold
        if threshold is None:
            assert "stable" not in course.phrase
