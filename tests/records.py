"""Small FHIR records built in tests, and the file forms EHRs export them in.

``small_stay()`` is one patient with one finished inpatient stay holding one of each thing the
pipeline reads; tests copy it and change what they are about. The ``as_*`` writers express the
same resources as each input form fhirgen accepts.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from pathlib import Path
from typing import Any

Resource = dict[str, Any]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
MED_CATEGORY = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"

ADMITTED = "2026-03-02T14:05:00-05:00"
DISCHARGED = "2026-03-06T11:30:00-05:00"


def concept(code: str, display: str, system: str = SNOMED) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def med_concept(code: str, display: str) -> dict[str, Any]:
    return concept(code, display, RXNORM)


def category(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": MED_CATEGORY, "code": code}]}]


def dosage(text: str, value: float, unit: str, per_day: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "text": text,
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}],
        }
    ]


def home_statement(
    rid: str, name: str, code: str, text: str, value: float, unit: str, **extra: Any
) -> Resource:
    resource = {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": "active",
        "medicationCodeableConcept": med_concept(code, name),
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2025-01-10"},
        "dosage": dosage(text, value, unit),
    }
    resource.update(extra)
    return resource


def discharge_order(
    rid: str, name: str, code: str, text: str, value: float, unit: str, per_day: int = 1
) -> Resource:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "category": category("discharge"),
        "medicationCodeableConcept": med_concept(code, name),
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "authoredOn": "2026-03-06T09:00:00-05:00",
        "dosageInstruction": dosage(text, value, unit, per_day),
    }


def note(
    rid: str,
    text: str,
    *,
    loinc: str = "11506-3",
    title: str = "Progress note",
    html: bool = False,
    date: str = "2026-03-03T08:00:00-05:00",
) -> Resource:
    return {
        "resourceType": "DocumentReference",
        "id": rid,
        "status": "current",
        "type": concept(loinc, title, LOINC),
        "subject": {"reference": "Patient/p1"},
        "date": date,
        "content": [
            {
                "attachment": {
                    "contentType": "text/html" if html else "text/plain",
                    "data": base64.b64encode(text.encode()).decode(),
                }
            }
        ],
        "context": {"encounter": [{"reference": "Encounter/e1"}]},
    }


def lab(
    rid: str,
    code: str,
    name: str,
    value: float,
    unit: str,
    when: str,
    *,
    low: float | None = None,
    high: float | None = None,
    flag: str | None = None,
    status: str = "final",
) -> Resource:
    resource: Resource = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": concept(code, name, LOINC),
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit},
    }
    if low is not None or high is not None:
        resource["referenceRange"] = [
            {
                k: {"value": v, "unit": unit}
                for k, v in (("low", low), ("high", high))
                if v is not None
            }
        ]
    if flag:
        resource["interpretation"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": flag,
                    }
                ]
            }
        ]
    return resource


def small_stay(suffix: str = "") -> list[Resource]:
    """One patient, one finished inpatient stay (e1), and an earlier clinic visit (e0).

    ``suffix`` is appended to every id and reference, for a second, distinct patient.
    """
    return (
        [_renamed(r, suffix) for r in copy.deepcopy(_SMALL_STAY)]
        if suffix
        else copy.deepcopy(_SMALL_STAY)
    )


def _renamed(value: Any, suffix: str, top: bool = True) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if (key == "id" and top) or (
                key == "reference" and isinstance(item, str) and "/" in item
            ):
                out[key] = item + suffix
            else:
                out[key] = _renamed(item, suffix, top=False)
        return out
    if isinstance(value, list):
        return [_renamed(v, suffix, top=False) for v in value]
    return value


_SMALL_STAY: list[Resource] = [
    {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:oid:1.2.3.4", "value": "MRN-0001"}],
        "name": [{"family": "Testperson", "given": ["Ada"]}],
        "gender": "female",
        "birthDate": "1950-05-01",
    },
    {
        "resourceType": "Encounter",
        "id": "e0",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-02-01T09:00:00-05:00", "end": "2026-02-01T09:30:00-05:00"},
    },
    {
        "resourceType": "Encounter",
        "id": "e1",
        "meta": {"versionId": "3"},
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "type": [concept("32485007", "Hospital admission")],
        "subject": {"reference": "Patient/p1"},
        "period": {"start": ADMITTED, "end": DISCHARGED},
        "reasonReference": [{"reference": "Condition/c1"}],
        "hospitalization": {
            "dischargeDisposition": concept(
                "home", "Home", "http://terminology.hl7.org/CodeSystem/discharge-disposition"
            )
        },
    },
    {
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": concept(
            "active", "Active", "http://terminology.hl7.org/CodeSystem/condition-clinical"
        ),
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "encounter-diagnosis",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/icd-10-cm",
                    "code": "J18.9",
                    "display": "Pneumonia, unspecified organism",
                },
                {"system": SNOMED, "code": "233604007", "display": "Pneumonia (disorder)"},
            ],
            "text": "Community-acquired pneumonia",
        },
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "onsetDateTime": "2026-03-01",
    },
    {
        "resourceType": "Condition",
        "id": "c2",
        "clinicalStatus": concept(
            "active", "Active", "http://terminology.hl7.org/CodeSystem/condition-clinical"
        ),
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": concept("38341003", "Hypertensive disorder"),
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2015-06-01",
    },
    {
        "resourceType": "Procedure",
        "id": "pr1",
        "status": "completed",
        "code": concept("399208008", "Plain chest X-ray"),
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "performedDateTime": "2026-03-02T15:00:00-05:00",
    },
    home_statement(
        "ms1", "Lisinopril 10 MG Oral Tablet", "314076", "10 mg by mouth once daily", 10, "mg"
    ),
    discharge_order(
        "mr1", "Lisinopril 10 MG Oral Tablet", "314076", "10 mg by mouth once daily", 10, "mg"
    ),
    discharge_order(
        "mr2",
        "Amoxicillin 500 MG Oral Capsule",
        "308191",
        "500 mg by mouth three times daily for 5 days",
        500,
        "mg",
        3,
    ),
    {
        "resourceType": "MedicationRequest",
        "id": "mr3",
        "status": "completed",
        "intent": "order",
        "category": category("inpatient"),
        "medicationCodeableConcept": med_concept("1665021", "Ceftriaxone 1000 MG Injection"),
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "authoredOn": ADMITTED,
        "dosageInstruction": dosage("1 g IV once daily", 1, "g"),
    },
    lab(
        "o1",
        "6690-2",
        "Leukocytes [#/volume] in Blood",
        15.2,
        "10*3/uL",
        "2026-03-02T15:30:00-05:00",
        low=4.5,
        high=11,
        flag="H",
    ),
    lab(
        "o2",
        "6690-2",
        "Leukocytes [#/volume] in Blood",
        9.1,
        "10*3/uL",
        "2026-03-05T06:00:00-05:00",
        low=4.5,
        high=11,
    ),
    lab(
        "o3",
        "2951-2",
        "Sodium [Moles/volume] in Serum or Plasma",
        138,
        "mmol/L",
        "2026-03-02T15:30:00-05:00",
        low=135,
        high=145,
    ),
    {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "clinicalStatus": concept(
            "active", "Active", "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
        ),
        "verificationStatus": concept(
            "confirmed",
            "Confirmed",
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
        ),
        "code": concept("91936005", "Allergy to penicillin"),
        "patient": {"reference": "Patient/p1"},
        "criticality": "high",
        "reaction": [{"manifestation": [concept("247472004", "Hives")], "severity": "moderate"}],
    },
    note("d1", "Day 2: improving on ceftriaxone. Afebrile overnight."),
    {
        "resourceType": "Appointment",
        "id": "ap1",
        "status": "booked",
        "description": "Primary care follow-up",
        "start": "2026-03-13T10:00:00-05:00",
        "end": "2026-03-13T10:20:00-05:00",
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}],
    },
]


# -- the forms an EHR exports ------------------------------------------------------------------


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def as_collection(resources: list[Resource]) -> Resource:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": f"https://ehr.example.org/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
            }
            for r in resources
        ],
    }


def as_searchset(resources: list[Resource]) -> Resource:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [
            {"relation": "self", "url": "https://ehr.example.org/fhir/Patient/p1/$everything"}
        ],
        "entry": [
            {
                "fullUrl": f"https://ehr.example.org/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ]
        + [
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "information", "code": "informational"}],
                },
                "search": {"mode": "outcome"},
            }
        ],
    }


def as_transaction(resources: list[Resource], *, keep_ids: bool = True) -> Resource:
    """A Synthea-style transaction: urn:uuid fullUrls and references by urn.

    Without ``keep_ids`` the resources carry no id, as in a transaction that creates them.
    """
    urns = {
        f"{r['resourceType']}/{r['id']}": f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
        for i, r in enumerate(resources)
    }

    def relink(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: (urns.get(v, v) if k == "reference" else relink(v)) for k, v in value.items()
            }
        if isinstance(value, list):
            return [relink(v) for v in value]
        return value

    entries = []
    for r in resources:
        key = f"{r['resourceType']}/{r['id']}"
        body = relink({k: v for k, v in r.items() if keep_ids or k != "id"})
        entries.append(
            {
                "fullUrl": urns[key],
                "resource": body,
                "request": {"method": "POST", "url": r["resourceType"]},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def as_batch_response(resources: list[Resource]) -> Resource:
    """What a batch of searches returns: one searchset Bundle per search, by type."""
    by_type: dict[str, list[Resource]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    return {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": as_searchset(items), "response": {"status": "200 OK"}}
            for _, items in sorted(by_type.items())
        ],
    }


def as_document(resources: list[Resource]) -> Resource:
    composition = {
        "resourceType": "Composition",
        "id": "comp1",
        "status": "final",
        "type": concept("34117-2", "History and physical note", LOINC),
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "date": "2026-03-02T18:00:00-05:00",
        "author": [{"display": "Admitting team"}],
        "title": "History and physical",
        "section": [
            {
                "title": "Assessment",
                "text": {
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Right lower lobe pneumonia.</p></div>',
                },
            }
        ],
    }
    bundle = as_collection([composition, *resources])
    bundle["type"] = "document"
    bundle["identifier"] = {
        "system": "urn:ietf:rfc:3986",
        "value": "urn:uuid:5b9c3d1e-0000-4000-8000-000000000001",
    }
    bundle["timestamp"] = "2026-03-02T18:00:00-05:00"
    return bundle


def write_ndjson(path: Path, resources: list[Resource], *, compress: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in resources).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def write_bulk_export(folder: Path, resources: list[Resource], *, manifest: bool = True) -> Path:
    """One NDJSON file per resource type, with or without the $export manifest."""
    by_type: dict[str, list[Resource]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    outputs = []
    for rtype, items in sorted(by_type.items()):
        write_ndjson(folder / f"{rtype}.ndjson", items)
        outputs.append(
            {
                "type": rtype,
                "url": f"https://ehr.example.org/bulk/files/{rtype}.ndjson",
                "count": len(items),
            }
        )
    if manifest:
        write_json(
            folder / "manifest.json",
            {
                "transactionTime": "2026-03-07T00:00:00Z",
                "request": "https://ehr.example.org/fhir/Patient/$export",
                "requiresAccessToken": True,
                "output": outputs,
                "error": [],
            },
        )
    return folder
