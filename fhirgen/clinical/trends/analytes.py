"""Which analyte a test measures: from its LOINC codes (``ANALYTE_CODES``), else its name."""

from __future__ import annotations

import re
from collections.abc import Iterable

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
