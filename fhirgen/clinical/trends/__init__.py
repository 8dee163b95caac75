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

``thresholds`` holds the table, ``analytes`` which analyte a test is, ``change`` whether a
change matters, ``course`` the words for a series and ``contradictions`` the check of words
against numbers.
"""

from fhirgen.clinical.trends.analytes import ANALYTE_CODES, analyte
from fhirgen.clinical.trends.change import meaningful_change
from fhirgen.clinical.trends.contradictions import contradiction
from fhirgen.clinical.trends.course import Course, Point, describe
from fhirgen.clinical.trends.thresholds import MEANINGFUL_CHANGE, Threshold

__all__ = [
    "ANALYTE_CODES",
    "MEANINGFUL_CHANGE",
    "Course",
    "Point",
    "Threshold",
    "analyte",
    "contradiction",
    "describe",
    "meaningful_change",
]
