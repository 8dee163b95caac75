"""Code-like displays made readable (``humanize``): acronyms in capitals (``ACRONYMS``),
mixed-case words kept, the rest lower case."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fhirgen.fhir.values import clean_name

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
