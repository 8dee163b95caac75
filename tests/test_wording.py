"""Readable wording: UCUM units, code-like displays, test names, names mid-sentence, diagnoses."""

from __future__ import annotations

import pytest

# The module, not its names: pytest would collect an imported ``test_name`` as a test.
from fhirgen.clinical import wording


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("10*3/uL", "×10³/µL"),
        ("10*9/L", "×10⁹/L"),
        ("10*6/uL", "×10⁶/µL"),
        ("10*12/L", "×10¹²/L"),
        ("Cel", "°C"),
        ("[degF]", "°F"),
        ("mm[Hg]", "mmHg"),
        ("mL/min/{1.73_m2}", "mL/min/1.73 m²"),
        ("mL/min/1.73m2", "mL/min/1.73 m²"),
        ("kg/m2", "kg/m²"),
        ("ug/L", "µg/L"),
        ("ug/mL", "µg/mL"),
        ("ug/dL", "µg/dL"),
        ("uL", "µL"),
        ("umol/L", "µmol/L"),
        ("uIU/mL", "µIU/mL"),
        ("U/L", "U/L"),
        ("[lb_av]", "lb"),
        ("[in_i]", "in"),
        ("[ft_i]", "ft"),
        ("/min", "/min"),
        ("{beats}/min", "/min"),
        ("beats/min", "/min"),
        ("beats/minute", "beats/minute"),
        ("L/min", "L/min"),
        ("%", "%"),
        ("g/dL", "g/dL"),
        ("mg/dL", "mg/dL"),
        ("mmol/L", "mmol/L"),
        ("mEq/L", "mEq/L"),
        ("pg/mL", "pg/mL"),
        ("ng/mL", "ng/mL"),
        ("s", "s"),
        ("{cells}/uL", "/µL"),
        ("u[IU]/mL", "µIU/mL"),
        ("10*-3", "×10⁻³"),
        ("/[HPF]", "/hpf"),
        ("units", "units"),
        ("mmol/mol", "mmol/mol"),
    ],
)
def test_unit_text_renders_ucum_as_a_reader_writes_it(unit, expected):
    assert wording.unit_text(unit) == expected


@pytest.mark.parametrize(
    "unit", ["1", "{ratio}", "{INR}", "{score}", "[pH]", "{#}", "{T-score}", "INR", "pH", ""]
)
def test_unit_text_of_unitless_codes_is_empty(unit):
    assert wording.unit_text(unit) == ""


def test_unit_text_never_shows_ucum_syntax():
    codes = (
        "10*3/uL 10*9/L 10*6/uL 10*12/L 10*3/mm3 Cel [degF] mm[Hg] cm[H2O] mL/min/{1.73_m2} kg/m2 "
        "ug/L umol/L u[IU]/mL [iU]/L [lb_av] [in_i] [ft_i] [oz_av] {beats}/min {breaths}/min "
        "{#}/[HPF] /[LPF] {ratio} {INR} {score} [pH] {cells}/uL mg/(kg.h) [arb'U]/mL "
        "{Ehrlich'U}/dL mL/{h} [cup_us] [drp] g{total}"
    ).split()
    assert len(codes) >= 30
    for code in codes:
        rendered = wording.unit_text(code)
        assert not set(rendered) & set("[]{}*_"), (code, rendered)
    assert wording.unit_text("cm[H2O]") == "cmH2O"
    assert wording.unit_text("{#}/[HPF]") == "/hpf"
    assert wording.unit_text("mg/(kg.h)") == "mg/(kg·h)"


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        ("16.8", "10*3/uL", "16.8 ×10³/µL"),
        ("95", "%", "95%"),
        ("38.9", "Cel", "38.9 °C"),
        ("7.32", "[pH]", "7.32"),
        ("1.2", "{INR}", "1.2"),
        ("72", "/min", "72/min"),
        ("72", "beats/minute", "72 beats/minute"),
        ("132", "mm[Hg]", "132 mmHg"),
        ("<0.01", "ng/mL", "<0.01 ng/mL"),
        ("0.040", "ng/mL", "0.040 ng/mL"),
    ],
)
def test_quantity_text_keeps_the_digits_and_renders_the_unit(value, unit, expected):
    assert wording.quantity_text(value, unit) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hearing_screen_aabr", "Hearing screen AABR"),
        ("Type_and_crossmatch", "Type and crossmatch"),
        ("PT_INR", "PT/INR"),
        ("BASIC METABOLIC PANEL", "Basic metabolic panel"),
        ("CHEST CT WITH CONTRAST", "Chest CT with contrast"),
        ("TYPE 2 DIABETES", "Type 2 diabetes"),
        ("echo_study", "Echo study"),
        ("pH_arterial", "pH arterial"),
        ("NT-proBNP_level", "NT-proBNP level"),
        ("Hypertension (disorder)", "Hypertension"),
    ],
)
def test_humanize_makes_codes_readable(text, expected):
    assert wording.humanize(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "NT-proBNP",
        "cefTRIAXone",
        "HbA1c",
        "SpO2",
        "pH",
        "Chest pain",
        "COPD",
        "Shortness of breath",
    ],
)
def test_humanize_leaves_ordinary_and_mixed_case_text_alone(text):
    assert wording.humanize(text) == text


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Shortness of breath", "shortness of breath"),
        ("Acute on chronic systolic heart failure", "acute on chronic systolic heart failure"),
        ("Chronic Congestive Heart Failure", "chronic congestive heart failure"),
        ("Type 2 diabetes mellitus", "type 2 diabetes mellitus"),
        ("Community-acquired pneumonia", "community-acquired pneumonia"),
        ("Non-ST elevation myocardial infarction", "non-ST elevation myocardial infarction"),
        ("Sepsis due to Escherichia coli", "sepsis due to Escherichia coli"),
        ("Vitamin D deficiency", "vitamin D deficiency"),
    ],
)
def test_in_sentence_lowers_ordinary_capitals(name, expected):
    assert wording.in_sentence(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "COPD",
        "NT-proBNP",
        "HbA1c",
        "Parkinson's disease",
        "Crohn disease",
        "Alzheimer's disease",
        "SARS-CoV-2 RNA",
        "Guillain-Barré syndrome",
        "Graves' disease",
        "Sjögren's syndrome",
        "Down syndrome",
    ],
)
def test_in_sentence_keeps_acronyms_mixed_case_and_eponyms(name):
    assert wording.in_sentence(name) == name


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (["718-7"], "hemoglobin"),
        (["6690-2"], "WBC"),
        (["26464-8"], "WBC"),
        (["1963-8"], "bicarbonate"),
        (["2028-9"], "bicarbonate"),
        (["3094-0"], "BUN"),
        (["6299-2"], "BUN"),
        (["98979-8"], "eGFR"),
        (["33762-6"], "NT-proBNP"),
        (["4548-4"], "HbA1c"),
        (["2744-1"], "pH"),
        (["2708-6"], "SpO2"),
        (["85354-9"], "blood pressure"),
        (["55284-4"], "blood pressure"),
        (["3141-9"], "weight"),
        (["72514-3"], "pain score"),
        (["2514-8"], "urine ketones"),
        (["http://snomed.info/sct|x", "not-a-code", "2951-2"], "sodium"),
    ],
)
def test_test_name_uses_the_table_for_a_known_code(codes, expected):
    assert wording.test_name(codes, ["Something Else Entirely [Mass/volume] in Blood"]) == expected


def test_short_test_names_cover_common_tests_in_lower_case_common_words():
    table = wording.SHORT_TEST_NAMES
    assert len(table) >= 80
    for code in ["777-3", "2823-3", "2160-0", "2345-7", "10839-9", "89579-7", "6301-6", "8867-4"]:
        assert code in table
    for short in table.values():
        assert not set(short) & set("[]{}_"), short
        assert short == short.strip() and "  " not in short, short
        assert wording.in_sentence(short) == short, short  # already reads mid-sentence


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Bicarbonate [Moles/volume] in Serum or Plasma", "bicarbonate"),
        ("Glucose [Mass/volume] in Blood", "glucose"),
        ("Pain severity - 0-10 verbal numeric rating [Score] - Reported", "pain score"),
        ("Hematocrit [Volume Fraction] of Blood by Automated count", "hematocrit"),
        ("Platelets [#/\u200bvolume] in Blood by Automated count", "platelets"),
        ("Oxygen saturation in Arterial blood by Pulse oximetry", "oxygen saturation"),
        ("Blood pressure panel with all children optional", "blood pressure panel"),
        ("Comprehensive metabolic 2000 panel - Serum or Plasma", "comprehensive metabolic panel"),
        ("Bilirubin.total [Mass/volume] in Serum or Plasma", "total bilirubin"),
        ("Glucose [Mass/volume] in Urine by Test strip", "urine glucose"),
        ("pH of Urine by Test strip", "urine pH"),
        ("Chronic Congestive Heart Failure", "chronic congestive heart failure"),
        ("hearing_screen_aabr", "hearing screen AABR"),
        (
            "Troponin I.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method",
            "high-sensitivity troponin I",
        ),
    ],
)
def test_test_name_shortens_the_first_name_without_a_known_code(name, expected):
    assert wording.test_name(["99999-9"], [name, "Ignored second name"]) == expected


def test_test_name_without_code_or_name_is_empty():
    assert wording.test_name([], []) == ""
    assert wording.test_name([], ["", "Glucose [Mass/volume] in Blood"]) == "glucose"


def test_test_name_is_not_collected_as_a_test():
    assert wording.test_name.__test__ is False


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["Chest pain", "Chest pain, unspecified"], ["Chest pain"]),
        (["Chest pain, unspecified"], ["Chest pain"]),
        (["Chest pain, unspecified", "Chest pain"], ["Chest pain"]),
        (["Pneumonia", "Community-acquired pneumonia"], ["Community-acquired pneumonia"]),
        (["Sepsis NOS", "sepsis", "SEPSIS."], ["Sepsis"]),
        (["Asthma, not otherwise specified", "Anemia (disorder)"], ["Asthma", "Anemia"]),
        (
            ["Hypertension", "Diabetes", "Essential hypertension", "Type 2 diabetes mellitus"],
            ["Essential hypertension", "Type 2 diabetes mellitus"],
        ),
        (
            ["Community-acquired pneumonia", "Pneumonia", "Acute kidney injury"],
            ["Community-acquired pneumonia", "Acute kidney injury"],
        ),
        (
            ["Heart failure", "Chronic kidney disease", "Chronic systolic heart failure"],
            ["Chronic systolic heart failure", "Chronic kidney disease"],
        ),
        (["Chest pain", "Abdominal pain"], ["Chest pain", "Abdominal pain"]),
        (["", "  ", "Cough"], ["Cough"]),
    ],
)
def test_distinct_names_drops_repeats_and_keeps_the_specific(names, expected):
    assert wording.distinct_names(names) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Chest pain, unspecified", "Chest pain"),
        ("Sepsis, NOS", "Sepsis"),
        ("Hypertension (disorder)", "Hypertension"),
        ("Pain, not otherwise specified", "Pain"),
        ("hearing_screen_aabr", "Hearing screen AABR"),
        ("Type_and_crossmatch", "Type and crossmatch"),
        ("Unspecified", "Unspecified"),
        ("Gastritis nos", "Gastritis"),
    ],
)
def test_plain_name_humanizes_and_drops_qualifier_tails(name, expected):
    assert wording.plain_name(name) == expected
