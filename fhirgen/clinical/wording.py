"""Readable wording for what FHIR records carry: units, codes-as-names, test names, diagnoses.

Records hold UCUM codes (``10*3/uL``, ``Cel``, ``mm[Hg]``), code-like displays
(``hearing_screen_aabr``), LOINC long names ("Bicarbonate [Moles/volume] in Serum or Plasma"),
Title Case names ("Chronic Congestive Heart Failure") and names that repeat each other ("Chest
pain" and "Chest pain, unspecified"). These pure functions turn them into what a physician
writes: ``unit_text``/``quantity_text`` for measurements, ``humanize`` for code-like displays,
``test_name`` (with the ``SHORT_TEST_NAMES`` table keyed by LOINC code) for laboratory tests and
vital signs, ``in_sentence`` for a name mid-sentence, and ``distinct_names``/``plain_name`` for
diagnoses and procedures in prose.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from fhirgen.fhir.values import clean_name

# --- units -------------------------------------------------------------------------------------

# Whole unit strings with a fixed rendering: unitless codes (and the words some records put in
# Quantity.unit for them), heart and breathing rates written as UCUM-ish text, Fahrenheit/Celsius
# spelled without UCUM brackets.
_WHOLE_UNITS: dict[str, str] = {
    "1": "",
    "pH": "",
    "INR": "",
    "ratio": "",
    "score": "",
    "(score)": "",
    "#": "",
    "beats/min": "/min",
    "breaths/min": "/min",
    "degF": "°F",
    "degC": "°C",
}

# UCUM bracketed atoms ("special" and customary units). Others lose their brackets and any
# "_qualifier" (``[cup_us]`` -> ``cup``).
_BRACKET_UNITS: dict[str, str] = {
    "[degF]": "°F",
    "[pH]": "",
    "[iU]": "IU",
    "[IU]": "IU",
    "[HPF]": "hpf",
    "[LPF]": "lpf",
    "[drp]": "drop",
    "[ppm]": "ppm",
    "[ppb]": "ppb",
    "[CFU]": "CFU",
    "[arb'U]": "arb. unit",
}

_PER_BSA = re.compile(r"\{?1\.73[._ ]?m2\}?")  # eGFR's "per 1.73 m² body surface area"
_ANNOTATION = re.compile(r"\{[^}]*\}")  # UCUM annotations are comments: {beats}, {INR}, {#}
_BRACKET = re.compile(r"\[[^\]]*\]")
_POWER = re.compile(r"(?<![\d.])(\d+)[*^](-?\d+)")  # 10*3, 10^9, 10*-3
# u as the micro prefix: only directly before a unit atom (uL, ug, umol, uIU, uU, um, us).
_MICRO = re.compile(r"(?<![A-Za-zµ])u(?=(?:mol|IU|Eq|eq|kat|g|L|l|m|s|U|V)(?![a-z]))")
_CELSIUS = re.compile(r"(?<![A-Za-z])Cel(?![A-Za-z])")
_SQUARE_CUBE = re.compile(r"(?<=[A-Za-z])([23])(?![\w])")  # m2, mm3
_PRODUCT = re.compile(r"(?<=[A-Za-z²³])\.(?=[A-Za-z])")  # UCUM "." is multiplication
_FORBIDDEN = re.compile(r"[\[\]{}*]")
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _bracket_unit(match: re.Match[str]) -> str:
    atom = match.group(0)
    if atom in _BRACKET_UNITS:
        return _BRACKET_UNITS[atom]
    return atom[1:-1].split("_", 1)[0]


def _power(match: re.Match[str]) -> str:
    base, exponent = match.groups()
    prefix = "×" if base == "10" else ""
    return f"{prefix}{base}{exponent.translate(_SUPERSCRIPT)}"


def unit_text(unit: str) -> str:
    """A UCUM code or unit string as a reader writes it: ``10*3/uL`` -> ``×10³/µL``.

    Unitless codes (``1``, ``{INR}``, ``[pH]``, ``{score}``) give ``""``; UCUM annotations
    (``{beats}/min``) are dropped; unknown plain units pass through. The result never contains
    ``[``, ``]``, ``{``, ``}``, ``*`` or ``_``.
    """
    text = unit.strip()
    if text in _WHOLE_UNITS:
        return _WHOLE_UNITS[text]
    text = _PER_BSA.sub("1.73 m²", text)
    text = _ANNOTATION.sub("", text)
    text = _BRACKET.sub(_bracket_unit, text)
    text = _POWER.sub(_power, text)
    text = _MICRO.sub("µ", text)
    text = _CELSIUS.sub("°C", text)
    text = _SQUARE_CUBE.sub(lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    text = _PRODUCT.sub("·", text)
    text = _FORBIDDEN.sub("", text.replace("_", " "))
    text = " ".join(text.split())
    if text.startswith("1/"):
        text = text[1:]  # 1/min -> /min
    return "" if text == "1" else text


def quantity_text(value: str, unit: str) -> str:
    """A formatted value with its rendered unit: ``("16.8", "10*3/uL")`` -> ``16.8 ×10³/µL``.

    ``value`` is already formatted text and is kept digit for digit. ``%`` and per-units
    (``/min``) follow the value directly; unitless values stand alone.
    """
    value = value.strip()
    rendered = unit_text(unit)
    if not value or not rendered:
        return value
    if rendered == "%" or rendered.startswith("/"):
        return f"{value}{rendered}"
    return f"{value} {rendered}"


# --- code-like displays ------------------------------------------------------------------------

# Clinical acronyms written in capitals wherever a code or an all-caps display spells them.
# (Common English words are left out on purpose: "echo" stays a word.)
ACRONYMS: frozenset[str] = frozenset(
    "INR PT PTT APTT CBC BMP CMP ECG EKG EEG CT MRI MRA AABR ABR BUN WBC RBC ABG VBG TSH ALT AST "
    "LDH CRP ESR BNP HIV HCV HBV PCR RNA DNA COVID ICU IV PO UA "
    "AIDS COPD CHF CKD AKI DVT UTI MCV MCH MCHC RDW MPV GGT ALP BMI GCS HDL LDL PSA TTE TEE EGD "
    "ERCP CABG PICC STEMI NSTEMI SARS XR".split()
)

# Words with a conventional mixed-case form, looked up by their lower-case spelling.
_PROPER_FORMS: dict[str, str] = {
    "ph": "pH",
    "pco2": "pCO2",
    "po2": "pO2",
    "spo2": "SpO2",
    "fio2": "FiO2",
    "hba1c": "HbA1c",
    "a1c": "A1c",
    "egfr": "eGFR",
    "nt-probnp": "NT-proBNP",
    "probnp": "proBNP",
    "sars-cov-2": "SARS-CoV-2",
    "covid-19": "COVID-19",
    "b12": "B12",
    "t3": "T3",
    "t4": "T4",
    "fev1": "FEV1",
}

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_RUN = re.compile(r"[^\W_]+")


def _is_mixed_case(word: str) -> bool:
    """True for words such as NT-proBNP, cefTRIAXone, HbA1c, SpO2, pH (kept as written)."""
    letters = [c for c in word if c.isalpha()]
    if not any(c.isupper() for c in letters) or not any(c.islower() for c in letters):
        return False
    return not (letters[0].isupper() and all(c.islower() for c in letters[1:]))


def _readable_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if run.lower() in _PROPER_FORMS:
        return _PROPER_FORMS[run.lower()]
    if run.upper() in ACRONYMS:
        return run.upper()
    if any(c.isdigit() for c in run):
        return run
    return run.lower()


def _readable_words(words: Sequence[str]) -> str:
    """Code words as prose: acronyms in capitals, mixed-case words kept, the rest lower case."""
    out: list[str] = []
    for word in words:
        if word.lower() in _PROPER_FORMS:
            out.append(_PROPER_FORMS[word.lower()])
        elif _is_mixed_case(word):
            out.append(word)
        else:
            out.append(_RUN.sub(_readable_run, word))
    text = " ".join(out)
    if out and out[0] == words[0].lower() and text[:1].isalpha():
        text = text[0].upper() + text[1:]  # a lowered first word starts the name with a capital
    return text


def humanize(text: str) -> str:
    """A display that looks like a code made readable; other text only tidied (``clean_name``).

    ``hearing_screen_aabr`` -> ``Hearing screen AABR``, ``PT_INR`` -> ``PT/INR`` (every part an
    acronym: joined with ``/``), ``BASIC METABOLIC PANEL`` -> ``Basic metabolic panel``.
    Acronyms come from ``ACRONYMS``; mixed-case words (``NT-proBNP``, ``SpO2``) stay as written.
    """
    cleaned = clean_name(_ZERO_WIDTH.sub("", text))
    if "_" in cleaned:
        parts = [p for p in re.split(r"[_\s]+", cleaned) if p]
        if len(parts) > 1 and all(p.upper() in ACRONYMS for p in parts):
            return "/".join(p.upper() for p in parts)
        return _readable_words(parts)
    has_letters = any(c.isalpha() for c in cleaned)
    if " " in cleaned and has_letters and not any(c.islower() for c in cleaned):
        return _readable_words(cleaned.split(" "))
    return cleaned


# --- names mid-sentence ------------------------------------------------------------------------

# Proper names that keep their capital in running text: eponyms and a few bacterial and fungal
# genera that diagnoses name ("Escherichia coli", "Candida"), and Rh (the blood group).
EPONYMS: frozenset[str] = frozenset(
    "Parkinson Alzheimer Crohn Hodgkin Cushing Addison Graves Barrett Down Guillain Barré Barre "
    "Bell Wilson Huntington Raynaud Kawasaki Lyme Sjögren Sjogren Hashimoto Meniere Ménière "
    "Paget Wernicke Korsakoff Tourette Asperger Achilles Colles Foley Gram "
    "Bruce Holter Doppler Swan Ganz Glasgow Apgar Braden Wells Caprini Simpson "
    "Epstein Barr Stevens Johnson Kaposi Fallot Bence Jones Rh "
    "Staphylococcus Streptococcus Escherichia Klebsiella Pseudomonas Enterococcus Clostridioides "
    "Clostridium Candida Haemophilus Legionella Salmonella Listeria Neisseria Helicobacter "
    "Mycobacterium Aspergillus Pneumocystis Enterobacter Serratia Acinetobacter".split()
)

_TOKEN = re.compile(r"[^\s\-/(),;:+&\[\]]+")
_POSSESSIVE = re.compile(r"(?:['’]s|['’])$")


def _sentence_token(match: re.Match[str]) -> str:
    token = match.group(0)
    letters = [c for c in token if c.isalpha()]
    if len(letters) < 2 or any(c.isdigit() for c in token):
        return token
    if not token[0].isupper() or not all(c.islower() for c in letters[1:]):
        return token  # all capitals (COPD) or a capital inside (NT-proBNP, HbA1c)
    base = _POSSESSIVE.sub("", token.rstrip(".,;:!?"))
    return token if base in EPONYMS else token.lower()


def in_sentence(name: str) -> str:
    """A name as it reads mid-sentence: ``Chronic Congestive Heart Failure`` -> lower case.

    Only Capitalised-then-lower-case words are lowered, and not the proper names in
    ``EPONYMS`` (``Parkinson's disease``, ``Crohn disease``); all-capital words, words with a
    capital inside or a digit (``COPD``, ``NT-proBNP``, ``SARS-CoV-2``) keep their case.
    """
    return _TOKEN.sub(_sentence_token, name)


# --- diagnoses and procedures ------------------------------------------------------------------

_QUALIFIER_TAIL = re.compile(
    r"(?:(?:,\s*|\s+)(?:unspecified|NOS|not otherwise specified)|\s*\(disorder\))\s*$",
    re.IGNORECASE,
)


def _strip_qualifiers(name: str) -> str:
    text = name.strip()
    while True:
        shorter = _QUALIFIER_TAIL.sub("", text).rstrip(" ,;:-")
        if shorter == text or not shorter:
            return text
        text = shorter


def _words(name: str) -> list[str]:
    return _RUN.findall(name.lower())


def _contains(longer: Sequence[str], shorter: Sequence[str]) -> bool:
    """True if every word of ``shorter`` appears in ``longer``, in order."""
    remaining = iter(longer)
    return all(word in remaining for word in shorter)


def distinct_names(names: Iterable[str]) -> list[str]:
    """The names without repeats, in first-seen order.

    Case- and punctuation-insensitive duplicates go; qualifier tails (", unspecified", " NOS",
    " (disorder)" ...) are dropped; a name whose words all appear, in order, in another is
    replaced by the more specific one, which takes the place of the first seen.
    """
    kept: list[tuple[str, list[str]]] = []
    for name in names:
        display = _strip_qualifiers(name)
        words = _words(display)
        if not words or any(_contains(other, words) for _, other in kept):
            continue
        covered = [i for i, (_, other) in enumerate(kept) if _contains(words, other)]
        if not covered:
            kept.append((display, words))
            continue
        kept[covered[0]] = (display, words)
        for index in reversed(covered[1:]):
            del kept[index]
    return [display for display, _ in kept]


def plain_name(name: str) -> str:
    """A diagnosis or procedure name for prose: ``humanize`` it, then drop qualifier tails."""
    return _strip_qualifiers(humanize(name))


# --- laboratory tests and vital signs ----------------------------------------------------------

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
