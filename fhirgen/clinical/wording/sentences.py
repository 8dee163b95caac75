"""Names mid-sentence (``in_sentence``): Capitalised words lowered, except proper names
(``EPONYMS``) and words whose case carries meaning."""

from __future__ import annotations

import re

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
