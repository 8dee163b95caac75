"""The stay: which resources of a patient's record belong to one inpatient encounter.

``find_stays`` picks a record's finished inpatient Encounters (``inpatient``); ``build_context``
(``builder``, its medications in ``medication_parts``) gathers, for one of them, a ``StayContext``
(``model``): the resources that name the Encounter or, naming none, fall inside its period
(``membership``), with notes as text (``text``) and never an existing discharge summary.
"""

from fhirgen.clinical.stay.builder import STAY_RESOURCE_TYPES, STAY_SCOPE, build_context
from fhirgen.clinical.stay.inpatient import (
    encounter_class_codes,
    encounter_version,
    find_stays,
    is_inpatient_stay,
)
from fhirgen.clinical.stay.model import StayContext
from fhirgen.clinical.stay.text import html_to_text

__all__ = [
    "STAY_RESOURCE_TYPES",
    "STAY_SCOPE",
    "StayContext",
    "build_context",
    "encounter_class_codes",
    "encounter_version",
    "find_stays",
    "html_to_text",
    "is_inpatient_stay",
]
