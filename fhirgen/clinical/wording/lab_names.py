"""Short common names of laboratory tests and vital signs (``test_name``, with the
``SHORT_TEST_NAMES`` table keyed by LOINC code), and free text quoting LOINC names made readable
(``readable_text``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from fhirgen.clinical.wording.displays import humanize
from fhirgen.clinical.wording.sentences import in_sentence

# Short common names of laboratory tests, panels, vital signs and scores, keyed by LOINC code.
SHORT_TEST_NAMES: dict[str, str] = {
    # Blood count
    "718-7": "hemoglobin",
    "4544-3": "hematocrit",
    "20570-8": "hematocrit",
    "6690-2": "WBC",
    "26464-8": "WBC",
    "789-8": "RBC",
    "777-3": "platelets",
    "26515-7": "platelets",
    "787-2": "MCV",
    "785-6": "MCH",
    "786-4": "MCHC",
    "788-0": "RDW",
    "21000-5": "RDW",
    "32623-1": "MPV",
    "32207-3": "PDW",
    "751-8": "neutrophil count",
    "731-0": "lymphocyte count",
    # Electrolytes, kidney, glucose
    "2951-2": "sodium",
    "2947-0": "sodium",
    "2823-3": "potassium",
    "6298-4": "potassium",
    "2075-0": "chloride",
    "2069-3": "chloride",
    "1963-8": "bicarbonate",
    "2028-9": "bicarbonate",
    "20565-8": "bicarbonate",
    "33037-3": "anion gap",
    "41276-7": "anion gap",
    "3094-0": "BUN",
    "6299-2": "BUN",
    "2160-0": "creatinine",
    "38483-4": "creatinine",
    "33914-3": "eGFR",
    "48642-3": "eGFR",
    "48643-1": "eGFR",
    "62238-1": "eGFR",
    "98979-8": "eGFR",
    "2345-7": "glucose",
    "2339-0": "glucose",
    "41653-7": "glucose",
    "17861-6": "calcium",
    "49765-1": "calcium",
    "1994-3": "ionized calcium",
    "19123-9": "magnesium",
    "2601-3": "magnesium",
    "2777-1": "phosphate",
    "3084-1": "uric acid",
    "53060-9": "beta-hydroxybutyrate",
    # Liver, pancreas, muscle
    "1751-7": "albumin",
    "2885-2": "total protein",
    "10834-0": "globulin",
    "1975-2": "total bilirubin",
    "1968-7": "direct bilirubin",
    "1742-6": "ALT",
    "1920-8": "AST",
    "6768-6": "alkaline phosphatase",
    "2324-2": "GGT",
    "2532-0": "LDH",
    "2157-6": "creatine kinase",
    "3040-3": "lipase",
    "1798-8": "amylase",
    "2524-7": "lactate",
    "32693-4": "lactate",
    # Heart
    "10839-9": "troponin I",
    "6598-7": "troponin T",
    "89579-7": "high-sensitivity troponin I",
    "67151-1": "high-sensitivity troponin T",
    "33762-6": "NT-proBNP",
    "30934-4": "BNP",
    "42637-9": "BNP",
    # Inflammation and infection
    "1988-5": "CRP",
    "30522-7": "high-sensitivity CRP",
    "33959-8": "procalcitonin",
    "30341-2": "ESR",
    "4537-7": "ESR",
    "600-7": "blood culture",
    "630-4": "urine culture",
    "94500-6": "SARS-CoV-2 RNA",
    # Coagulation
    "6301-6": "INR",
    "34714-6": "INR",
    "5902-2": "PT",
    "3173-2": "aPTT",
    "14979-9": "aPTT",
    "3255-7": "fibrinogen",
    "48065-7": "D-dimer",
    "48066-5": "D-dimer",
    # Endocrine, iron, vitamins, lipids
    "4548-4": "HbA1c",
    "17856-6": "HbA1c",
    "3016-3": "TSH",
    "3024-7": "free T4",
    "2276-4": "ferritin",
    "2498-4": "iron",
    "2132-9": "vitamin B12",
    "2284-8": "folate",
    "2093-3": "total cholesterol",
    "18262-6": "LDL",
    "13457-7": "LDL",
    "2085-9": "HDL",
    "2571-8": "triglycerides",
    "2857-1": "PSA",
    "883-9": "ABO group",
    "10331-7": "Rh type",
    # Blood gases
    "2744-1": "pH",
    "2746-6": "pH",
    "2019-8": "pCO2",
    "2021-4": "pCO2",
    "2703-7": "pO2",
    # Urine
    "2514-8": "urine ketones",
    "5797-6": "urine ketones",
    "5792-7": "urine glucose",
    "25428-4": "urine glucose",
    "5804-0": "urine protein",
    "20454-5": "urine protein",
    "5794-3": "urine blood",
    "5799-2": "urine leukocyte esterase",
    "5802-4": "urine nitrite",
    "5803-2": "urine pH",
    "5811-5": "urine specific gravity",
    "5770-3": "urine bilirubin",
    "20505-4": "urine bilirubin",
    "5778-6": "urine color",
    "5767-9": "urine appearance",
    "32167-9": "urine clarity",
    "14959-1": "urine albumin/creatinine ratio",
    # Panels
    "58410-2": "CBC",
    "57021-8": "CBC with differential",
    "51990-0": "basic metabolic panel",
    "24321-2": "basic metabolic panel",
    "24323-8": "comprehensive metabolic panel",
    "57698-3": "lipid panel",
    "24331-1": "lipid panel",
    "24356-8": "urinalysis",
    "24357-6": "urinalysis",
    "24336-0": "arterial blood gas",
    # Vital signs and bedside measures
    "8867-4": "heart rate",
    "9279-1": "respiratory rate",
    "8310-5": "temperature",
    "8331-1": "temperature",
    "2708-6": "SpO2",
    "59408-5": "SpO2",
    "2710-2": "SpO2",
    "8480-6": "systolic blood pressure",
    "8462-4": "diastolic blood pressure",
    "8478-0": "mean arterial pressure",
    "85354-9": "blood pressure",
    "55284-4": "blood pressure",
    "29463-7": "weight",
    "3141-9": "weight",
    "8302-2": "height",
    "39156-5": "BMI",
    "59576-9": "BMI percentile",
    "9843-4": "head circumference",
    "3150-0": "FiO2",
    "3151-8": "oxygen flow rate",
    "10230-1": "LVEF",
    "19926-5": "FEV1/FVC",
    # Scores
    "72514-3": "pain score",
    "9269-2": "GCS",
    "44261-6": "PHQ-9 score",
    "70274-6": "GAD-7 score",
    "72166-2": "smoking status",
}

_PROPERTY = re.compile(r"\s*\[[^\]]*\]")  # LOINC's property: [Moles/volume], [Score] ...
_SPECIMENS = (
    r"serum or plasma|serum|plasma|platelet poor plasma|blood|arterial blood|venous blood|"
    r"capillary blood|mixed venous blood|cord blood|respiratory system specimen|"
    r"respiratory specimen"
)
_SPECIMEN_TAIL = re.compile(rf"\s+(?:in|of)\s+(?:{_SPECIMENS})\b", re.IGNORECASE)
_URINE = re.compile(r"\s+(?:in|of)\s+urine(?:\s+sediment)?\b", re.IGNORECASE)
_HIGH_SENSITIVITY = re.compile(r"\s+by\s+high sensitivity method\b", re.IGNORECASE)
_METHOD_TAIL = re.compile(r"\s+by\s+.*$", re.IGNORECASE)  # LOINC's method comes last
_LISTED_METHOD = re.compile(
    r"\s+by\s+(?:automated count|manual count|test strip|pulse oximetry|calculation|"
    r"glucometer)\b",
    re.IGNORECASE,
)
_REPORTED = re.compile(r"\s+-\s+(?:reported|measured)\b", re.IGNORECASE)
_PAIN = re.compile(r"^pain severity\s*-\s*0-10 verbal numeric rating", re.IGNORECASE)
_PANEL = re.compile(
    r"\s+(?:(?:19|20)\d\d\s+)?panel\b(?:\s+with all children optional|\s+-.*)?$", re.IGNORECASE
)
_RATIO_TOTAL = re.compile(r"/[A-Za-z]+\.total\b")  # Hemoglobin A1c/Hemoglobin.total
_DOTTED = re.compile(r"\b([A-Za-z][A-Za-z ]*?)\.([a-z]+)\b")  # Bilirubin.total
_LEADING_FORMS = frozenset({"total", "direct", "indirect", "free", "ionized", "conjugated"})
_SILENT_FORMS = frozenset({"cardiac", "predicted"})


def _dotted(match: re.Match[str]) -> str:
    word, form = match.groups()
    if form in _LEADING_FORMS:
        return f"{form} {word}"
    return word if form in _SILENT_FORMS else f"{word} {form}"


def _shorten(name: str) -> str:
    """A LOINC long name (or any test name) cut to its common wording."""
    text = _REPORTED.sub("", humanize(name))
    high_sensitivity = bool(_HIGH_SENSITIVITY.search(text))
    text = _HIGH_SENSITIVITY.sub("", text)
    # LOINC reads "Component [Property] in System by Method": a " by ..." after the property or
    # the specimen is the method; elsewhere only the usual methods are dropped.
    axis = _PROPERTY.search(text) or _SPECIMEN_TAIL.search(text)
    if axis:
        text = text[: axis.start()] + _METHOD_TAIL.sub("", text[axis.start() :])
    else:
        text = _LISTED_METHOD.sub("", text)
    text = _PROPERTY.sub("", text)
    if _PAIN.match(text):
        return "pain score"
    steps: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
        (_SPECIMEN_TAIL, ""),
        (_PANEL, " panel"),
        (_RATIO_TOTAL, ""),
        (_DOTTED, _dotted),
    ]
    for pattern, replacement in steps:
        text = pattern.sub(replacement, text)
    urine = bool(_URINE.search(text))
    text = _URINE.sub("", text)
    text = re.sub(r"\(\s*\)", "", text)
    text = " ".join(text.split()).strip(" ,;:-.")
    if not text:
        return in_sentence(humanize(name))
    text = in_sentence(text)
    if urine and not text.lower().startswith("urine"):
        text = f"urine {text}"
    if high_sensitivity:
        text = f"high-sensitivity {text}"
    return text


def readable_text(text: str) -> str:
    """Free text that quotes LOINC names, made readable: 'Glucose [Mass/volume] in Blood < 108'
    -> 'Glucose < 108' (bracketed properties and specimen words dropped, codes humanised)."""
    cleaned = _SPECIMEN_TAIL.sub("", _PROPERTY.sub("", text))
    return " ".join(humanize(cleaned).split())


def test_name(codes: Iterable[str], names: Sequence[str]) -> str:
    """The short common name of a laboratory test or vital sign, as written mid-sentence.

    A code in ``SHORT_TEST_NAMES`` wins; otherwise the first name is shortened: LOINC's bracketed
    property, specimen ("in Serum or Plasma") and method ("by Automated count") dropped, a urine
    specimen kept as a leading "urine", then lower-cased as by ``in_sentence``. Empty when there
    is neither a known code nor a name.
    """
    for code in codes:
        short = SHORT_TEST_NAMES.get(str(code).strip())
        if short:
            return short
    for name in names:
        if name and name.strip():
            return _shorten(name)
    return ""


test_name.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, despite its name
