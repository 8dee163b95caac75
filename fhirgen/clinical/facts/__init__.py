"""Facts: the stay as short, citable statements, each tied to the FHIR resources it came from.

Every sentence fhirgen writes cites facts by id, and every fact cites resources, so each
statement in a draft can be traced to the chart. ``extract_facts`` (extract.py) runs the
builders family by family: encounter (stay, care team, reason, disposition), conditions,
procedures, medications, results (labs and vitals), notes (reports and notes), allergies and
follow_up (pending results, follow-up, goals, plan activities); model.py holds Fact, FactSet and
friends, builder.py the stable ids and the "nothing recorded" facts.
"""

from fhirgen.clinical.facts.allergies import NO_KNOWN_ALLERGY_CODES
from fhirgen.clinical.facts.extract import extract_facts
from fhirgen.clinical.facts.model import Fact, FactKind, FactSet, Value
from fhirgen.clinical.facts.phrasing import date_span

__all__ = [
    "NO_KNOWN_ALLERGY_CODES",
    "Fact",
    "FactKind",
    "FactSet",
    "Value",
    "date_span",
    "extract_facts",
]
