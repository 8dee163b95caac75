"""Readable wording for what FHIR records carry: units, codes-as-names, test names, diagnoses.

Records hold UCUM codes (``10*3/uL``, ``Cel``, ``mm[Hg]``), code-like displays
(``hearing_screen_aabr``), LOINC long names ("Bicarbonate [Moles/volume] in Serum or Plasma"),
Title Case names ("Chronic Congestive Heart Failure") and names that repeat each other ("Chest
pain" and "Chest pain, unspecified"). These pure functions turn them into what a physician
writes: ``unit_text``/``quantity_text`` for measurements, ``humanize`` for code-like displays,
``test_name`` (with the ``SHORT_TEST_NAMES`` table keyed by LOINC code) for laboratory tests and
vital signs, ``in_sentence`` for a name mid-sentence, and ``distinct_names``/``plain_name`` for
diagnoses and procedures in prose.

``units``, ``displays`` (code-like displays), ``sentences`` (names mid-sentence), ``diagnoses``
and ``lab_names`` (tests and vital signs) hold them.
"""

from fhirgen.clinical.wording.diagnoses import distinct_names, plain_name
from fhirgen.clinical.wording.displays import ACRONYMS, humanize
from fhirgen.clinical.wording.lab_names import SHORT_TEST_NAMES, readable_text, test_name
from fhirgen.clinical.wording.sentences import EPONYMS, in_sentence
from fhirgen.clinical.wording.units import quantity_text, unit_text

__all__ = [
    "ACRONYMS",
    "EPONYMS",
    "SHORT_TEST_NAMES",
    "distinct_names",
    "humanize",
    "in_sentence",
    "plain_name",
    "quantity_text",
    "readable_text",
    "test_name",
    "unit_text",
]
